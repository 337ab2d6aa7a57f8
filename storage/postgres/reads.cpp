// PostgresStore's reads: services with what the API shows next to them, events, ticks, and the
// time series. Each on a read session of its own, so it never waits behind a write batch.
#include <algorithm>
#include <limits>

#include "core/logging.h"
#include "storage/column_codecs.h"
#include "storage/postgres/store_impl.h"

namespace vigil::postgres {
namespace {

using postgres_rollups::from_us;
using postgres_rollups::kDayMs;
using postgres_rollups::kHourMs;

// services ⟕ service_metrics ⟕ open event, in one query: the partial unique index makes the
// open-event join an index lookup.
constexpr const char* kViewColumnsAndJoins =
    ", m.tick_count, m.up_count, m.down_count, m.average_response_time_ms, m.uptime_percent,"
    " m.last_tick_at, e.id, e.event, e.date_started, e.created_at, e.updated_at"
    " FROM services s"
    " LEFT JOIN service_metrics m ON m.service_id = s.id"
    " LEFT JOIN service_events e ON e.service_id = s.id AND e.date_ended IS NULL";

ServiceView read_view(const Result& r, int row) {
  ServiceView view;
  view.service = column_codecs::read_service(ResultRow(r, row), 0);
  const int m = column_codecs::kServiceColumnCount;
  if (!null_at(r, row, m)) {
    view.metric.tick_count = int_at(r, row, m + 0);
    view.metric.up_count = int_at(r, row, m + 1);
    view.metric.down_count = int_at(r, row, m + 2);
    view.metric.average_response_time_ms = double_at(r, row, m + 3);
    view.metric.uptime_percent = double_at(r, row, m + 4);
    view.last_tick_at = from_unix_ms(int_at(r, row, m + 5));
  }
  const int e = m + 6;
  if (!null_at(r, row, e)) {
    Event event;
    event.id = int_at(r, row, e + 0);
    event.service_id = view.service.id;
    event.kind = column_codecs::decode_event_kind(text_at(r, row, e + 1));
    event.date_started = from_unix_ms(int_at(r, row, e + 2));
    event.created_at = from_unix_ms(int_at(r, row, e + 3));
    event.updated_at = from_unix_ms(int_at(r, row, e + 4));
    view.open_event = event;
  }
  return view;
}

// A read-only transaction with one snapshot for every statement in it.
void snapshot(Session& session) {
  session.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
}

}  // namespace

std::vector<Service> PostgresStore::active_services() {
  return reading("active_services", [&](Session& session) {
    const auto r = session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                               " FROM services s WHERE s.active ORDER BY s.id");
    std::vector<Service> services;
    for (int row = 0; row < r.rows(); ++row)
      services.push_back(column_codecs::read_service(ResultRow(r, row), 0));
    return services;
  });
}

std::unordered_map<ServiceId, ServiceRuntime> PostgresStore::load_runtime() {
  return reading("load_runtime", [&](Session& session) {
    const auto r = session.run(
        "SELECT m.service_id, m.tick_count, m.up_count, m.down_count,"
        " m.average_response_time_ms, m.uptime_percent, m.last_tick_at,"
        " e.event, e.date_started,"
        // A heartbeat's newest report, found from its newest tick backwards.
        " CASE WHEN s.kind = 'heartbeat' THEN (SELECT t.ts FROM service_ticks t"
        "   WHERE t.service_id = m.service_id AND t.error IS DISTINCT FROM $1"
        "   ORDER BY t.ts DESC LIMIT 1) END"
        " FROM service_metrics m"
        " JOIN services s ON s.id = m.service_id"
        " LEFT JOIN service_events e ON e.service_id = m.service_id AND e.date_ended IS NULL",
        {std::string(kMissedHeartbeat)});
    std::unordered_map<ServiceId, ServiceRuntime> runtime;
    for (int row = 0; row < r.rows(); ++row) {
      ServiceRuntime state;
      state.metric.tick_count = int_at(r, row, 1);
      state.metric.up_count = int_at(r, row, 2);
      state.metric.down_count = int_at(r, row, 3);
      state.metric.average_response_time_ms = double_at(r, row, 4);
      state.metric.uptime_percent = double_at(r, row, 5);
      state.last_tick_at = from_unix_ms(int_at(r, row, 6));
      if (!null_at(r, row, 7)) {
        state.open_event_kind = column_codecs::decode_event_kind(text_at(r, row, 7));
        state.open_event_started = from_unix_ms(int_at(r, row, 8));
      }
      if (!null_at(r, row, 9)) state.last_beat_at = from_unix_ms(int_at(r, row, 9));
      runtime.emplace(int_at(r, row, 0), state);
    }
    return runtime;
  });
}

std::vector<ServiceView> PostgresStore::list_services(const ServiceFilter& filter) {
  return reading("list_services", [&](Session& session) {
    // Each filter adds one condition with its own parameter; one query either way.
    Params params;
    const auto param = [&](Param value, const char* type) {
      params.push_back(std::move(value));
      return "$" + std::to_string(params.size()) + "::" + type;
    };
    std::string where = " WHERE s.active";
    if (filter.team) where += " AND s.team = " + param(*filter.team, "text");
    if (filter.tag) where += " AND s.tags::jsonb ? " + param(*filter.tag, "text");
    // is_stale (storage/store.h) in SQL.
    std::string now;
    if (filter.status || filter.stale) now = param(text(ms(filter.now)), "int8");
    const std::string stale = "(s.active AND s.kind <> 'heartbeat' AND " + now +
                              " - GREATEST(COALESCE(m.last_tick_at, s.updated_at), s.updated_at)"
                              " > 2 * s.interval_ms + s.timeout_ms)";
    if (filter.status)
      where += " AND e.event = " + param(std::string(to_string(*filter.status)), "text") +
               " AND NOT " + stale;
    if (filter.stale) where += " AND " + stale;
    if (filter.muted) {
      where += std::string(*filter.muted ? " AND " : " AND NOT ") +
               "(s.muted AND (s.muted_until IS NULL OR s.muted_until > " +
               param(text(ms(filter.now)), "int8") + "))";
    }
    if (filter.kind)
      where += " AND s.kind = " + param(std::string(to_string(*filter.kind)), "text");
    if (filter.after_id) where += " AND s.id > " + param(text(*filter.after_id), "int8");
    // No limit (NULL) when there is none or it is negative, as SQLite's LIMIT -1.
    const std::string limit = param(
        filter.limit && *filter.limit >= 0 ? Param(text(*filter.limit)) : std::nullopt, "int8");
    const std::string offset = param(text(std::max(filter.offset, 0)), "int8");
    const auto r =
        session.run(std::string("SELECT ") + column_codecs::kServiceColumns + kViewColumnsAndJoins +
                        where + " ORDER BY s.id LIMIT " + limit + " OFFSET " + offset,
                    params);
    std::vector<ServiceView> views;
    views.reserve(static_cast<std::size_t>(r.rows()));
    for (int row = 0; row < r.rows(); ++row) views.push_back(read_view(r, row));
    return views;
  });
}

std::optional<ServiceView> PostgresStore::get_service(ServiceId id) {
  return reading("get_service", [&](Session& session) -> std::optional<ServiceView> {
    const auto r = session.run(std::string("SELECT ") + column_codecs::kServiceColumns +
                                   kViewColumnsAndJoins + " WHERE s.id = $1",
                               {text(id)});
    if (r.rows() == 0) return std::nullopt;
    return read_view(r, 0);
  });
}

std::vector<ServiceFreshness> PostgresStore::freshness() {
  return reading("freshness", [&](Session& session) {
    const auto r = session.run(
        "SELECT s.id, s.name, s.kind, s.interval_ms, s.timeout_ms, s.updated_at, m.last_tick_at"
        " FROM services s LEFT JOIN service_metrics m ON m.service_id = s.id"
        " WHERE s.active ORDER BY s.id");
    std::vector<ServiceFreshness> out;
    for (int row = 0; row < r.rows(); ++row) {
      ServiceFreshness& f = out.emplace_back();
      f.id = int_at(r, row, 0);
      f.name = text_at(r, row, 1);
      f.kind = text_at(r, row, 2) == to_string(ServiceKind::heartbeat) ? ServiceKind::heartbeat
                                                                       : ServiceKind::http;
      f.interval = Millis(int_at(r, row, 3));
      f.timeout = Millis(int_at(r, row, 4));
      f.updated_at = from_unix_ms(int_at(r, row, 5));
      if (!null_at(r, row, 6)) f.last_tick_at = from_unix_ms(int_at(r, row, 6));
    }
    return out;
  });
}

std::vector<Event> PostgresStore::events(ServiceId id, int limit,
                                         std::optional<std::int64_t> before) {
  if (limit <= 0) return {};
  return reading("events", [&](Session& session) {
    Params params{text(id), text(limit)};
    if (before) params.push_back(text(*before));
    const auto r =
        session.run(std::string("SELECT id, event, date_started, date_ended, created_at, updated_at"
                                " FROM service_events WHERE service_id = $1") +
                        (before ? " AND id < $3" : "") + " ORDER BY id DESC LIMIT $2",
                    params);
    std::vector<Event> events;
    for (int row = 0; row < r.rows(); ++row) events.push_back(read_event(r, row, id));
    return events;
  });
}

std::vector<Tick> PostgresStore::ticks(ServiceId id, const TickQuery& query) {
  if (query.limit <= 0) return {};
  return reading("ticks", [&](Session& session) {
    std::int64_t upper = query.to ? ms(*query.to) : std::numeric_limits<std::int64_t>::max();
    if (query.before) upper = std::min(upper, ms(query.before->ts));
    Params params{text(id),
                  text(query.from ? ms(*query.from) : std::numeric_limits<std::int64_t>::min()),
                  text(upper), text(query.limit)};
    if (query.before) {
      params.push_back(text(ms(query.before->ts)));
      params.push_back(text(query.before->seq));
    }
    const auto r =
        session.run(std::string("SELECT t.ts, t.up, t.status_code, t.response_us, t.error, r.name,"
                                " t.message, t.resolve_us, t.connect_us, t.tls_us, t.processing_us,"
                                " t.transfer_us, t.seq FROM service_ticks t"
                                " LEFT JOIN regions r ON r.id = t.region_id"
                                " WHERE t.service_id = $1 AND t.ts >= $2 AND t.ts <= $3") +
                        (query.before ? " AND (t.ts < $5 OR t.seq < $6)" : "") +
                        " ORDER BY t.ts DESC, t.seq DESC LIMIT $4",
                    params);
    std::vector<Tick> ticks;
    ticks.reserve(static_cast<std::size_t>(r.rows()));
    for (int row = 0; row < r.rows(); ++row) {
      Tick tick;
      tick.service_id = id;
      tick.ts = from_unix_ms(int_at(r, row, 0));
      tick.up = bool_at(r, row, 1);
      if (!null_at(r, row, 2)) tick.status_code = static_cast<int>(int_at(r, row, 2));
      tick.response_ms = from_us(int_at(r, row, 3));
      if (!null_at(r, row, 4)) tick.error = text_at(r, row, 4);
      if (!null_at(r, row, 5)) tick.region = text_at(r, row, 5);
      if (!null_at(r, row, 6)) tick.message = text_at(r, row, 6);
      if (!null_at(r, row, 7)) {
        const auto phase = [&](int column) { return from_us(int_at(r, row, column)); };
        tick.phases = PhaseTimings{phase(7), phase(8), phase(9), phase(10), phase(11)};
      }
      tick.seq = int_at(r, row, 12);
      ticks.push_back(std::move(tick));
    }
    return ticks;
  });
}

std::optional<std::string> PostgresStore::ping_failure() {
  try {
    // Reads a real table, so a database without vigil's schema fails, unlike "SELECT 1".
    reading("ping",
            [](Session& session) { return session.run("SELECT COUNT(*) FROM schema_version"); });
    return std::nullopt;
  } catch (const std::exception& e) {
    // A lost connection's error names the server already; the name is added for the others.
    std::string failure = e.what();
    if (failure.find(name_) == std::string::npos) failure = "database " + name_ + ": " + failure;
    log_warn("storage: ping failed: " + failure);
    return failure;
  }
}

RollupSummary PostgresStore::summarize(ServiceId id, TimePoint from, TimePoint to) {
  return reading("summarize", [&](Session& session) {
    Transaction txn(session.connection());
    snapshot(session);
    auto all = postgres_rollups::summarize(session, id, ms(from), ms(to));
    txn.commit();
    const auto it = all.find(id);
    return it == all.end() ? RollupSummary{} : it->second;
  });
}

std::map<ServiceId, RollupSummary> PostgresStore::summarize_all(TimePoint from, TimePoint to) {
  return reading("summarize_all", [&](Session& session) {
    Transaction txn(session.connection());
    snapshot(session);
    auto all = postgres_rollups::summarize(session, std::nullopt, ms(from), ms(to));
    txn.commit();
    return all;
  });
}

Store::RecentSummaries PostgresStore::summarize_all_recent(Millis window, TimePoint now) {
  auto [from, services] = recent<RollupSummary>(
      "summarize_all_recent", window, now, recent_summaries_,
      [](Session& session, std::int64_t a, std::int64_t b) {
        return postgres_rollups::summarize(session, std::nullopt, a, b);
      },
      [](const RollupSummary& s) { return PackedSummary::pack(s); },
      [](const PackedSummary& p) { return p.unpack(); });
  return {from, std::move(services)};
}

Store::RecentCounts PostgresStore::count_all_recent(Millis window, TimePoint now) {
  const auto same = [](const UptimeCounts& c) { return c; };
  auto [from, services] = recent<UptimeCounts>("count_all_recent", window, now, recent_counts_,
                                               postgres_rollups::count_all, same, same);
  return {from, std::move(services)};
}

std::vector<std::pair<TimePoint, RollupSummary>> PostgresStore::rollups(ServiceId id,
                                                                        RollupResolution resolution,
                                                                        TimePoint from,
                                                                        TimePoint to) {
  return reading("rollups", [&](Session& session) {
    std::vector<std::pair<TimePoint, RollupSummary>> out;
    for (const auto& [bucket, summary] :
         postgres_rollups::rows(session, resolution, id, ms(from), ms(to)))
      out.emplace_back(from_unix_ms(bucket), summary);
    return out;
  });
}

std::vector<Event> PostgresStore::events_overlapping(ServiceId id, TimePoint from, TimePoint to) {
  return reading("events_overlapping", [&](Session& session) {
    const auto r = session.run(
        "SELECT id, event, date_started, date_ended, created_at, updated_at"
        " FROM service_events WHERE service_id = $1 AND date_started < $3"
        " AND (date_ended IS NULL OR date_ended > $2) ORDER BY id",
        {text(id), text(ms(from)), text(ms(to))});
    std::vector<Event> out;
    for (int row = 0; row < r.rows(); ++row) out.push_back(read_event(r, row, id));
    return out;
  });
}

// The window of summarize_all_recent and count_all_recent, as on SQLite (storage/store.h):
// `read(session, a, b)` gives each service's Value over [a, b); `pack` and `unpack` turn one
// into what the cache keeps and back.
template <typename Value, typename Stored, typename Read, typename Pack, typename Unpack>
std::pair<TimePoint, std::map<ServiceId, Value>> PostgresStore::recent(
    const char* operation, Millis window, TimePoint now,
    std::map<std::int64_t, WindowCache<Stored>>& caches, Read&& read, Pack&& pack,
    Unpack&& unpack) {
  return reading(operation,
                 [&](Session& session) -> std::pair<TimePoint, std::map<ServiceId, Value>> {
                   Transaction txn(session.connection());
                   snapshot(session);
                   const auto read_session = [&](std::int64_t a, std::int64_t b) {
                     return read(session, a, b);
                   };
                   const auto cut = cut_recent_window(window, now);
                   if (!cut) {
                     auto out = read_session(ms(now) - window.count(), ms(now));
                     txn.commit();
                     return {now - window, std::move(out)};
                   }
                   std::lock_guard lock(recent_mutex_);
                   auto& cache = caches[window.count()];
                   if (cache.stale(*cut))
                     cache.template refresh<Value>(*cut, read_session, pack, unpack);
                   std::map<ServiceId, Value> out;
                   for (const auto& [id, stored] : cache.services) out.emplace(id, unpack(stored));
                   for (const auto& [id, value] : read_session(cut->closed_to, cut->live_to))
                     out[id].merge(value);
                   txn.commit();
                   return {from_unix_ms(cut->from), std::move(out)};
                 });
}

}  // namespace vigil::postgres
