// Storage in isolation: how many ticks per second a store commits, called directly in batches
// (Store::apply, one transaction each) and through the Writer thread as vigil runs it, and how
// many bytes each tick adds to the database.
//
//   vigil_bench_storage --dir DIR [--backend sqlite|postgres] [--services S] [--seconds T]
//                       [--max-ticks N] [--batch B] [--interval-seconds I]
//
// Each phase gets a fresh database with the same S services, and stops after T seconds or N
// ticks. SQLite: a file in DIR (created; it must not hold one already). PostgreSQL: a database
// of a server this tool starts (initdb into a temp dir, listening on 127.0.0.1 only, with
// PostgreSQL's durable defaults: fsync and synchronous commit on) and stops at the end; its CPU
// (every server process, the ended ones included) is reported beside this process's. Tick times
// advance as if each service were probed every I seconds (default 60), which decides how many
// rollup periods the ticks open. Records come from the runner's own state machine fed a realistic
// mix (mostly up, a down tick now and then, so events open and close). Prints one JSON object.
#include <SQLiteCpp/Database.h>
#include <dirent.h>
#include <prometheus/registry.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runner/state_machine.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/postgres_store.h"
#include "storage/postgres/session.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "support/postgres_server.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string dir;
  std::string backend = "sqlite";
  int services = 1000;
  Millis interval{60'000};
  double seconds = 5;
  long max_ticks = 2'000'000;
  std::size_t batch = 1000;
};

long file_size(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? static_cast<long>(info.st_size) : 0;
}

// User + system CPU of the whole process (every thread) so far, in ms.
double cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto ms = [](const timeval& t) { return double(t.tv_sec) * 1e3 + double(t.tv_usec) / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

// Bytes this process has handed to write(2) and friends so far (/proc/self/io wchar): what
// SQLite writes to the WAL and, at checkpoints, to the database file.
long long written_bytes() {
  std::FILE* io = std::fopen("/proc/self/io", "r");
  if (!io) return 0;
  char key[64];
  long long value = 0;
  long long wchar = 0;
  while (std::fscanf(io, "%63[^:]: %lld\n", key, &value) == 2)
    if (std::string_view(key) == "wchar") wchar = value;
  std::fclose(io);
  return wchar;
}

// The database with its WAL: what the ticks cost on disk until the next checkpoint.
long db_bytes(const std::string& path) { return file_size(path) + file_size(path + "-wal"); }

// Bytes of pages in use in the database as a reader sees it now (WAL included): its size
// without the free pages and the WAL's leftover frames.
long long used_bytes(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  const auto pragma = [&](const char* name) {
    return db.execAndGet(std::string("PRAGMA ") + name).getInt64();
  };
  return (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
}

// The CPU (user + system, ms) so far of process `parent` and its children, with that of their
// children that have ended: a PostgreSQL server's, whose backends are the postmaster's children
// (each in a session of its own, so not found by process group).
double tree_cpu_ms(pid_t parent) {
  const double tick_ms = 1000.0 / double(::sysconf(_SC_CLK_TCK));
  double total = 0;
  DIR* proc = ::opendir("/proc");
  if (!proc) return 0;
  while (const dirent* entry = ::readdir(proc)) {
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string field; fields >> field && f.size() < 15;) f.push_back(field);
    if (f.size() < 15) continue;
    if (std::atol(entry->d_name) != parent && std::stol(f[1]) != parent) continue;  // f[1]: ppid
    // f[11..14]: utime, stime, cutime, cstime
    for (int i = 11; i <= 14; ++i) total += double(std::stoll(f[i])) * tick_ms;
  }
  ::closedir(proc);
  return total;
}

// Where each phase's database lives, and what it costs.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // A store on the database of `phase` ("direct", "writer"), made empty on first use.
  virtual std::unique_ptr<Store> open(const std::string& phase) = 0;
  // The database's size on disk now.
  virtual long long bytes(const std::string& phase) = 0;
  // Bytes the database holds in use now (without free pages), for the growth per tick.
  virtual long long used_bytes(const std::string& phase) = 0;
  // Bytes written so far to make commits durable: SQLite's writes (WAL and checkpoints) by this
  // process, or the server's WAL.
  virtual long long written() = 0;
  // CPU of the database server so far (ms), 0 for an embedded database.
  virtual double server_cpu_ms() { return 0; }
};

class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(std::string dir) : dir_(std::move(dir)) {}
  const char* name() const override { return "sqlite"; }
  std::unique_ptr<Store> open(const std::string& phase) override {
    return open_sqlite_store(path(phase));
  }
  long long bytes(const std::string& phase) override { return db_bytes(path(phase)); }
  long long used_bytes(const std::string& phase) override { return ::used_bytes(path(phase)); }
  long long written() override { return written_bytes(); }
  std::string path(const std::string& phase) const { return dir_ + "/" + phase + ".db"; }

 private:
  std::string dir_;
};

class PostgresBackend final : public Backend {
 public:
  PostgresBackend()
      : server_("vigil_bench", test::PostgresServer::Lifetime::this_process,
                test::PostgresServer::Durability::on),
        admin_(server_.conninfo()) {}
  const char* name() const override { return "postgres"; }
  std::unique_ptr<Store> open(const std::string& phase) override {
    if (created_.insert(phase).second) admin_.exec("CREATE DATABASE bench_" + phase);
    return open_postgres_store(conninfo(phase));
  }
  long long bytes(const std::string& phase) override {
    return postgres::int_at(admin_.exec("SELECT pg_database_size($1)", {"bench_" + phase}), 0, 0);
  }
  long long used_bytes(const std::string& phase) override { return bytes(phase); }
  long long written() override {
    return postgres::int_at(
        admin_.exec("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8"), 0, 0);
  }
  double server_cpu_ms() override { return tree_cpu_ms(server_.pid()); }

 private:
  std::string conninfo(const std::string& phase) const {
    return server_.server_conninfo() + " dbname=bench_" + phase;
  }
  test::PostgresServer server_;
  postgres::Connection admin_;
  std::set<std::string> created_;
};

// Produces the records a runner would for `ids`, round-robin, one probe per call.
class TickSource {
 public:
  // The runner finishes probes in the order of their services' phases, which follow a hash of
  // the name: a batch holds services scattered over the id range, so `ids` are shuffled (with a
  // fixed seed) rather than taken in id order, which would flatter SQLite's index locality.
  // Each service ticks once per `interval`, at its own phase within it, as the runner does.
  TickSource(std::vector<ServiceId> ids, Millis interval)
      : ids_(std::move(ids)), states_(ids_.size()), start_(now_ms()), interval_(interval) {
    std::shuffle(ids_.begin(), ids_.end(), std::mt19937_64(42));
  }

  TickRecord next() {
    const std::size_t slot = count_ % ids_.size();
    ProbeResult result;
    // About 1 probe in 97 is down, so events open and close as in real life.
    result.up = count_ % 97 != 0;
    result.status_code = result.up ? 200 : 503;
    result.response_ms = 0.3 + double(count_ % 50) / 10.0;
    if (!result.up) result.error = "HTTP status 503 not expected";
    result.phases = PhaseTimings{0.01, 0.05, 0, result.response_ms - 0.1, 0.04};
    const auto round = static_cast<long>(count_ / ids_.size());
    const TimePoint started = start_ + interval_ * round +
                              interval_ * static_cast<long>(slot) / static_cast<long>(ids_.size());
    ++count_;
    return apply_probe_result(states_[slot], ids_[slot], result, started, region_).record;
  }

 private:
  std::vector<ServiceId> ids_;
  std::vector<ServiceRuntime> states_;
  TimePoint start_;
  Millis interval_;
  std::string region_ = "bench";
  std::uint64_t count_ = 0;
};

// The fresh database of `phase` with `count` services; returns their ids.
std::vector<ServiceId> create_services(Backend& backend, const std::string& phase, int count) {
  auto store = backend.open(phase);
  std::vector<ServiceSpec> specs(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    specs[i].name = "bench-" + std::to_string(i);
    specs[i].url = "http://127.0.0.1:8080/ok";
  }
  store->sync_services(specs, now_ms());
  std::vector<ServiceId> ids;
  for (const auto& service : store->active_services()) ids.push_back(service.id);
  return ids;
}

struct PhaseResult {
  long ticks = 0;
  double seconds = 0;
  long bytes_added = 0;
  double cpu_ms = 0;         // the whole process over the phase, making the records included
  double server_cpu_ms = 0;  // the database server's over the phase
  long long written = 0;     // bytes written (WAL and checkpoints) over the phase
  // Database growth per tick once every service has its rows (metric, event, rollup periods):
  // from the end of the first round of ticks to the end; negative when there was no second.
  double steady_bytes_per_tick = -1;
};

// Store::apply straight from this thread; only the apply calls are timed.
PhaseResult run_direct(const Options& options, Backend& backend) {
  const std::string db = "direct";
  PhaseResult out;
  TickSource source(create_services(backend, db, options.services), options.interval);
  const long long before = backend.bytes(db);
  const double cpu_before = cpu_ms();
  const double server_cpu_before = backend.server_cpu_ms();
  const long long written_before = backend.written();
  {
    auto store = backend.open(db);
    std::vector<TickRecord> batch;
    batch.reserve(options.batch);
    const auto deadline = Clock::now() + std::chrono::duration<double>(options.seconds);
    Clock::duration busy{};
    long round_ticks = 0;  // ticks when the first round was complete
    long long round_bytes = 0;
    while (out.ticks < options.max_ticks && Clock::now() < deadline) {
      batch.clear();
      for (std::size_t i = 0; i < options.batch; ++i) batch.push_back(source.next());
      const auto started = Clock::now();
      store->apply(batch);
      busy += Clock::now() - started;
      out.ticks += static_cast<long>(batch.size());
      if (round_ticks == 0 && out.ticks >= options.services) {
        round_ticks = out.ticks;
        round_bytes = backend.used_bytes(db);
      }
    }
    out.seconds = std::chrono::duration<double>(busy).count();
    if (round_ticks > 0 && out.ticks > round_ticks)
      out.steady_bytes_per_tick =
          double(backend.used_bytes(db) - round_bytes) / double(out.ticks - round_ticks);
  }  // closing the last connection checkpoints the WAL into the file
  out.cpu_ms = cpu_ms() - cpu_before;
  out.server_cpu_ms = backend.server_cpu_ms() - server_cpu_before;
  out.written = backend.written() - written_before;
  out.bytes_added = backend.bytes(db) - before;
  return out;
}

// Through the Writer, as vigil runs it (default options): a producer thread submits as fast as
// the writer keeps up (the queue is held under 200,000 so nothing is dropped), timed from the
// first submit to the flush that commits the last record.
PhaseResult run_writer(const Options& options, Backend& backend, std::uint64_t& dropped) {
  const std::string db = "writer";
  PhaseResult out;
  TickSource source(create_services(backend, db, options.services), options.interval);
  const long long before = backend.bytes(db);
  const double cpu_before = cpu_ms();
  const double server_cpu_before = backend.server_cpu_ms();
  const long long written_before = backend.written();
  {
    auto store = backend.open(db);
    prometheus::Registry registry;
    Writer writer(*store, registry);
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::duration<double>(options.seconds);
    while (out.ticks < options.max_ticks && Clock::now() < deadline) {
      if (writer.queue_depth() > 200'000) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      for (int i = 0; i < 1000; ++i) writer.submit(source.next());
      out.ticks += 1000;
    }
    writer.flush();
    out.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    dropped = writer.dropped_records();
    out.ticks = static_cast<long>(writer.committed_records());
    writer.stop();
  }
  out.cpu_ms = cpu_ms() - cpu_before;
  out.server_cpu_ms = backend.server_cpu_ms() - server_cpu_before;
  out.written = backend.written() - written_before;
  out.bytes_added = backend.bytes(db) - before;
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: vigil_bench_storage --dir DIR [--backend sqlite|postgres] [--services S] "
               "[--seconds T] [--max-ticks N] [--batch B] [--interval-seconds I]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage();
    const char* value = argv[++i];
    if (arg == "--dir") {
      options.dir = value;
    } else if (arg == "--backend") {
      options.backend = value;
    } else if (arg == "--services") {
      options.services = std::atoi(value);
    } else if (arg == "--seconds") {
      options.seconds = std::atof(value);
    } else if (arg == "--max-ticks") {
      options.max_ticks = std::atol(value);
    } else if (arg == "--interval-seconds") {
      options.interval = Millis(static_cast<long>(std::atof(value) * 1000));
    } else if (arg == "--batch") {
      options.batch = static_cast<std::size_t>(std::atol(value));
    } else {
      return usage();
    }
  }
  if (options.dir.empty() || options.services <= 0 || options.seconds <= 0 ||
      options.interval <= Millis::zero() || options.max_ticks <= 0 || options.batch == 0 ||
      (options.backend != "sqlite" && options.backend != "postgres"))
    return usage();
  std::error_code ignored;  // a failure shows as the store failing to open, with its reason
  std::filesystem::create_directories(options.dir, ignored);
  SqliteBackend sqlite(options.dir);
  if (options.backend == "sqlite" &&
      (file_size(sqlite.path("direct")) > 0 || file_size(sqlite.path("writer")) > 0)) {
    std::fprintf(stderr, "vigil_bench_storage: %s already holds a database\n", options.dir.c_str());
    return 2;
  }
  if (options.backend == "postgres") {
    if (const auto reason = test::PostgresServer::unavailable_reason()) {
      std::fprintf(stderr, "vigil_bench_storage: no PostgreSQL server: %s\n", reason->c_str());
      return 77;
    }
  }

  try {
    std::unique_ptr<PostgresBackend> postgres;
    if (options.backend == "postgres") postgres = std::make_unique<PostgresBackend>();
    Backend& backend = postgres ? static_cast<Backend&>(*postgres) : sqlite;
    const PhaseResult direct = run_direct(options, backend);
    std::uint64_t dropped = 0;
    const PhaseResult through_writer = run_writer(options, backend, dropped);
    const auto rate = [](const PhaseResult& r) { return r.seconds > 0 ? r.ticks / r.seconds : 0; };
    const auto per_tick = [](const PhaseResult& r) {
      return r.ticks > 0 ? double(r.bytes_added) / double(r.ticks) : 0;
    };
    const auto cpu_us = [](const PhaseResult& r) {
      return r.ticks > 0 ? r.cpu_ms * 1000 / double(r.ticks) : 0;
    };
    const auto written_per_tick = [](const PhaseResult& r) {
      return r.ticks > 0 ? double(r.written) / double(r.ticks) : 0;
    };
    const auto server_cpu_us = [](const PhaseResult& r) {
      return r.ticks > 0 ? r.server_cpu_ms * 1000 / double(r.ticks) : 0;
    };
    std::printf(
        "{\"backend\": \"%s\", \"services\": %d, \"batch\": %zu, \"interval_s\": %.1f, "
        "\"direct\": {\"ticks\": %ld, \"seconds\": %.3f, \"ticks_per_s\": %.0f, "
        "\"bytes_per_tick\": %.1f, \"cpu_us_per_tick\": %.2f, "
        "\"server_cpu_us_per_tick\": %.2f, \"written_per_tick\": %.0f, "
        "\"steady_bytes_per_tick\": %.1f}, "
        "\"writer\": {\"ticks\": %ld, \"seconds\": %.3f, \"ticks_per_s\": %.0f, "
        "\"bytes_per_tick\": %.1f, \"cpu_us_per_tick\": %.2f, "
        "\"server_cpu_us_per_tick\": %.2f, \"written_per_tick\": %.0f, "
        "\"dropped\": %llu}, \"db_bytes\": %lld}\n",
        backend.name(), options.services, options.batch, double(options.interval.count()) / 1000,
        direct.ticks, direct.seconds, rate(direct), per_tick(direct), cpu_us(direct),
        server_cpu_us(direct), written_per_tick(direct), direct.steady_bytes_per_tick,
        through_writer.ticks, through_writer.seconds, rate(through_writer),
        per_tick(through_writer), cpu_us(through_writer), server_cpu_us(through_writer),
        written_per_tick(through_writer), static_cast<unsigned long long>(dropped),
        backend.bytes("direct") + backend.bytes("writer"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vigil_bench_storage: %s\n", e.what());
    return 1;
  }
  return 0;
}
