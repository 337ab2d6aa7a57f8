// PostgresClusterStore: members and shard leases in the cluster_members and cluster_shards
// tables, every lease on the server's clock (now()), so members' own clocks never matter.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/cluster.h"
#include "storage/postgres/postgres_store.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {
namespace {

// Each statement is bounded, so a stuck server fails a round instead of holding the member's
// thread past the point where it must tell its runner to stop.
SessionLimits cluster_limits(Millis lease) {
  return SessionLimits::answering_within(std::max<Millis>(lease / 5, Millis{500}));
}

std::vector<int> int_column(const Result& rows) {
  std::vector<int> values;
  for (int row = 0; row < rows.rows(); ++row) values.push_back(int(int_at(rows, row, 0)));
  return values;
}

// "{1,2,3}" as PostgreSQL prints an int[] to a list.
std::vector<int> int_array(const std::string& text) {
  std::vector<int> values;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t start = text.find_first_of("-0123456789", at);
    if (start == std::string::npos) break;
    std::size_t end = start;
    while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) ||
                                 (end == start && text[end] == '-')))
      ++end;
    values.push_back(std::stoi(text.substr(start, end - start)));
    at = end;
  }
  return values;
}

class PostgresClusterStore final : public ClusterStore {
 public:
  PostgresClusterStore(std::string conninfo, Millis lease)
      : session_(std::move(conninfo), cluster_limits(lease)) {
    try {
      session_.get();
    } catch (const PgError& e) {
      throw StorageError(std::string("storage: cannot open the cluster tables: ") + e.what());
    }
  }

  std::vector<std::string> renew(const MemberIdentity& member, Millis lease,
                                 const std::string& last_error,
                                 const std::string& replacing) override {
    std::lock_guard lock(mutex_);
    const std::optional<std::string> holder = guarded("renewing the member's lease", [&] {
      // Taken over only from the same incarnation, or from a member whose lease ran out.
      const auto rows = session_.get().run(
          "INSERT INTO cluster_members AS m (name, incarnation, region, role, address, version, "
          " takes_shards, started_at, renewed_at, lease_until, last_error) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(), "
          " now() + $8::bigint * interval '1 millisecond', $9) "
          "ON CONFLICT (name) DO UPDATE SET incarnation = EXCLUDED.incarnation, "
          " region = EXCLUDED.region, role = EXCLUDED.role, address = EXCLUDED.address, "
          " version = EXCLUDED.version, takes_shards = EXCLUDED.takes_shards, "
          " started_at = CASE WHEN m.incarnation = EXCLUDED.incarnation THEN m.started_at "
          "   ELSE EXCLUDED.started_at END, "
          " renewed_at = now(), lease_until = EXCLUDED.lease_until, "
          " last_error = EXCLUDED.last_error "
          "WHERE m.incarnation = EXCLUDED.incarnation OR m.lease_until < now() "
          " OR m.incarnation = $10 "
          "RETURNING 1",
          {without_nul(member.name), member.incarnation, without_nul(member.region), member.role,
           without_nul(member.address), member.version, text(member.takes_shards),
           text(std::int64_t{lease.count()}), without_nul(last_error), without_nul(replacing)});
      if (rows.rows() == 1) return std::optional<std::string>();
      const auto held = session_.get().run(
          "SELECT incarnation FROM cluster_members WHERE name = $1", {without_nul(member.name)});
      return std::optional<std::string>(held.rows() == 1 ? text_at(held, 0, 0) : "");
    });
    if (holder)
      throw NameTaken("another live member is named \"" + member.name + "\" (incarnation " +
                          *holder + "): give each process its own INSTANCE_NAME",
                      *holder);
    return guarded("reading the live members", [&] {
      Session& session = session_.get();
      // Gone for a day: their rows go, and with them what they had claimed (claim_beats counts
      // a claim by a member whose lease ran out as none, but only while its row is there).
      session.run(
          "UPDATE pending_beats SET claimed_by = NULL WHERE claimed_by IN (SELECT name FROM "
          "cluster_members WHERE lease_until < now() - interval '1 day')");
      session.run("DELETE FROM cluster_members WHERE lease_until < now() - interval '1 day'");
      const auto rows = session.run(
          "SELECT name FROM cluster_members WHERE region = $1 AND takes_shards "
          "AND lease_until > now() ORDER BY name COLLATE \"C\"",
          {without_nul(member.region)});
      std::vector<std::string> names;
      for (int row = 0; row < rows.rows(); ++row) names.push_back(text_at(rows, row, 0));
      return names;
    });
  }

  std::vector<int> hold_shards(const MemberIdentity& member, const std::vector<int>& shards,
                               Millis lease) override {
    ArrayText list;
    for (const int shard : shards) list.add(shard);
    std::lock_guard lock(mutex_);
    return guarded("holding shards", [&] {
      Session& session = session_.get();
      if (!shards.empty()) {
        session.run(
            "INSERT INTO cluster_shards AS s (region, shard, owner, lease_until) "
            "SELECT $1, x, $2, now() + $4::bigint * interval '1 millisecond' "
            "FROM unnest($3::int[]) AS x "
            "ON CONFLICT (region, shard) DO UPDATE SET owner = EXCLUDED.owner, "
            " lease_until = EXCLUDED.lease_until "
            "WHERE s.owner IS NULL OR s.owner = EXCLUDED.owner OR s.lease_until < now()",
            {without_nul(member.region), without_nul(member.name), list.str(),
             text(std::int64_t{lease.count()})});
      }
      // What it holds, including any it did not ask for (none, unless a previous incarnation
      // of the name left them): those are freed by the caller as not wanted.
      return int_column(
          session.run("SELECT shard FROM cluster_shards WHERE region = $1 AND owner = $2 "
                      "AND lease_until > now() ORDER BY shard",
                      {without_nul(member.region), without_nul(member.name)}));
    });
  }

  void release_shards(const MemberIdentity& member, const std::vector<int>& shards) override {
    if (shards.empty()) return;
    ArrayText list;
    for (const int shard : shards) list.add(shard);
    std::lock_guard lock(mutex_);
    guarded("freeing shards", [&] {
      session_.get().run(
          "UPDATE cluster_shards SET owner = NULL, lease_until = NULL "
          "WHERE region = $1 AND owner = $2 AND shard = ANY($3::int[])",
          {without_nul(member.region), without_nul(member.name), list.str()});
    });
  }

  void leave(const MemberIdentity& member) override {
    std::lock_guard lock(mutex_);
    guarded("leaving the cluster", [&] {
      std::optional<Transaction> txn;
      Session& session = session_.begin(txn);
      const auto gone = session.run(
          "DELETE FROM cluster_members WHERE name = $1 AND incarnation = $2 RETURNING 1",
          {without_nul(member.name), member.incarnation});
      // Another incarnation holds the name now: its shards and claims are its own.
      if (gone.rows() == 1) {
        session.run("UPDATE cluster_shards SET owner = NULL, lease_until = NULL WHERE owner = $1",
                    {without_nul(member.name)});
        // Beats it claimed and did not store (a stop leaves none handed to its runner unstored,
        // but some may not have been handed yet).
        session.run("UPDATE pending_beats SET claimed_by = NULL WHERE claimed_by = $1",
                    {without_nul(member.name)});
      }
      txn->commit();
    });
  }

  std::vector<MemberView> members() override {
    std::lock_guard lock(mutex_);
    return guarded("reading the members", [&] {
      const auto rows = session_.get().run(
          "SELECT m.name, m.region, m.role, m.address, m.version, "
          " (extract(epoch FROM m.started_at) * 1000)::bigint, "
          " (extract(epoch FROM now() - m.renewed_at) * 1000)::bigint, "
          " m.lease_until > now(), m.last_error, "
          " COALESCE((SELECT array_agg(s.shard ORDER BY s.shard) FROM cluster_shards s "
          "   WHERE s.region = m.region AND s.owner = m.name AND s.lease_until > now()), "
          "  '{}'::int[]) "
          "FROM cluster_members m ORDER BY m.region COLLATE \"C\", m.name COLLATE \"C\"");
      std::vector<MemberView> members;
      for (int row = 0; row < rows.rows(); ++row) {
        MemberView view;
        view.name = text_at(rows, row, 0);
        view.region = text_at(rows, row, 1);
        view.role = text_at(rows, row, 2);
        view.address = text_at(rows, row, 3);
        view.version = text_at(rows, row, 4);
        view.started_at = from_unix_ms(int_at(rows, row, 5));
        view.lease_age = Millis{int_at(rows, row, 6)};
        view.live = bool_at(rows, row, 7);
        view.last_error = text_at(rows, row, 8);
        view.shards = int_array(text_at(rows, row, 9));
        members.push_back(std::move(view));
      }
      return members;
    });
  }

 private:
  std::mutex mutex_;
  SessionHolder session_;  // guarded by mutex_
};

}  // namespace
}  // namespace vigil::postgres

namespace vigil {

std::unique_ptr<ClusterStore> open_postgres_cluster_store(const std::string& conninfo,
                                                          Millis lease) {
  return std::make_unique<postgres::PostgresClusterStore>(conninfo, lease);
}

}  // namespace vigil
