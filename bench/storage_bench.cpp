// Storage in isolation: how many ticks per second the SQLite store commits, called directly in
// batches (Store::apply, one transaction each) and through the Writer thread as vigil runs it,
// and how many bytes each tick adds to the database file.
//
//   vigil_bench_storage --dir DIR [--services S] [--seconds T] [--max-ticks N] [--batch B]
//                       [--interval-seconds I]
//
// Each phase gets a fresh database in DIR (created; it must not hold one already) with the same
// S services, and stops after T seconds or N ticks. Tick times advance as if each service were
// probed every I seconds (default 60), which decides how many rollup periods the ticks open.
// Records come from the runner's own state machine fed a realistic mix (mostly up, a down tick now
// and then, so events open and close). Prints one JSON object.
#include <SQLiteCpp/Database.h>
#include <prometheus/registry.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runner/state_machine.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string dir;
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

// A fresh database at `db` with `count` services; returns their ids.
std::vector<ServiceId> create_services(const std::string& db, int count) {
  auto store = open_sqlite_store(db);
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
  double cpu_ms = 0;      // the whole process over the phase, making the records included
  long long written = 0;  // bytes written (WAL and checkpoints) over the phase
  // Database growth per tick once every service has its rows (metric, event, rollup periods):
  // from the end of the first round of ticks to the end; negative when there was no second.
  double steady_bytes_per_tick = -1;
};

// Store::apply straight from this thread; only the apply calls are timed.
PhaseResult run_direct(const Options& options, const std::string& db) {
  PhaseResult out;
  TickSource source(create_services(db, options.services), options.interval);
  const long before = db_bytes(db);
  const double cpu_before = cpu_ms();
  const long long written_before = written_bytes();
  {
    auto store = open_sqlite_store(db);
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
        round_bytes = used_bytes(db);
      }
    }
    out.seconds = std::chrono::duration<double>(busy).count();
    if (round_ticks > 0 && out.ticks > round_ticks)
      out.steady_bytes_per_tick =
          double(used_bytes(db) - round_bytes) / double(out.ticks - round_ticks);
  }  // closing the last connection checkpoints the WAL into the file
  out.cpu_ms = cpu_ms() - cpu_before;
  out.written = written_bytes() - written_before;
  out.bytes_added = db_bytes(db) - before;
  return out;
}

// Through the Writer, as vigil runs it (default options): a producer thread submits as fast as
// the writer keeps up (the queue is held under 200,000 so nothing is dropped), timed from the
// first submit to the flush that commits the last record.
PhaseResult run_writer(const Options& options, const std::string& db, std::uint64_t& dropped) {
  PhaseResult out;
  TickSource source(create_services(db, options.services), options.interval);
  const long before = db_bytes(db);
  const double cpu_before = cpu_ms();
  const long long written_before = written_bytes();
  {
    auto store = open_sqlite_store(db);
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
  out.written = written_bytes() - written_before;
  out.bytes_added = db_bytes(db) - before;
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: vigil_bench_storage --dir DIR [--services S] [--seconds T] "
               "[--max-ticks N] [--batch B] [--interval-seconds I]\n");
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
      options.interval <= Millis::zero() || options.max_ticks <= 0 || options.batch == 0)
    return usage();
  const std::string direct_db = options.dir + "/direct.db";
  const std::string writer_db = options.dir + "/writer.db";
  std::error_code ignored;  // a failure shows as the store failing to open, with its reason
  std::filesystem::create_directories(options.dir, ignored);
  if (file_size(direct_db) > 0 || file_size(writer_db) > 0) {
    std::fprintf(stderr, "vigil_bench_storage: %s already holds a database\n", options.dir.c_str());
    return 2;
  }

  try {
    const PhaseResult direct = run_direct(options, direct_db);
    std::uint64_t dropped = 0;
    const PhaseResult through_writer = run_writer(options, writer_db, dropped);
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
    std::printf(
        "{\"services\": %d, \"batch\": %zu, \"interval_s\": %.1f, "
        "\"direct\": {\"ticks\": %ld, \"seconds\": %.3f, \"ticks_per_s\": %.0f, "
        "\"bytes_per_tick\": %.1f, \"cpu_us_per_tick\": %.2f, \"written_per_tick\": %.0f, "
        "\"steady_bytes_per_tick\": %.1f}, "
        "\"writer\": {\"ticks\": %ld, \"seconds\": %.3f, \"ticks_per_s\": %.0f, "
        "\"bytes_per_tick\": %.1f, \"cpu_us_per_tick\": %.2f, \"written_per_tick\": %.0f, "
        "\"dropped\": %llu}, \"db_bytes\": %ld}\n",
        options.services, options.batch, double(options.interval.count()) / 1000, direct.ticks,
        direct.seconds, rate(direct), per_tick(direct), cpu_us(direct), written_per_tick(direct),
        direct.steady_bytes_per_tick, through_writer.ticks, through_writer.seconds,
        rate(through_writer), per_tick(through_writer), cpu_us(through_writer),
        written_per_tick(through_writer), static_cast<unsigned long long>(dropped),
        db_bytes(direct_db) + db_bytes(writer_db));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vigil_bench_storage: %s\n", e.what());
    return 1;
  }
  return 0;
}
