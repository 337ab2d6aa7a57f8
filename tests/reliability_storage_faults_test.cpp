// Storage faults end to end: the real vigil binary on a real SQLite file while its
// storage fails. A full disk is the file-size limit of the vigil process lowered under it
// (prlimit RLIMIT_FSIZE: writes then fail with EFBIG, for root too, unlike chmod); a lock held by
// another process is this test holding BEGIN EXCLUSIVE on the database; a read-only database is
// its files made immutable (chattr +i: refused to root too, unlike chmod). During the fault
// /healthz must answer 503 naming it, probes must go on, vigil_storage_errors_total must rise and
// the ticks must wait in memory; once it clears, /healthz is 200 again and every held tick is in
// the database. A small STORAGE_QUEUE_MAX_TICKS must drop the oldest ticks and count them instead.
#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "support/process.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kServices = 5;
constexpr double kIntervalSeconds = 0.2;
// SQLite says "database or disk is full" for ENOSPC and "disk I/O error" for EFBIG (the file-size
// limit this test uses).
constexpr const char* kDiskFullReason = "disk is full|disk I/O error";

// Makes a file immutable (chattr +i) for its lifetime: no process, root included, may write it.
// Not every file system has the flag (tmpfs does not): ok() says whether it took.
class Immutable {
 public:
  explicit Immutable(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY)) {
    if (fd_ < 0) {
      error_ = "open " + path + ": " + std::strerror(errno);
      return;
    }
    if (::ioctl(fd_, FS_IOC_GETFLAGS, &flags_) != 0 || [&] {
          int with = flags_ | FS_IMMUTABLE_FL;
          return ::ioctl(fd_, FS_IOC_SETFLAGS, &with);
        }() != 0) {
      error_ = "chattr +i " + path + ": " + std::strerror(errno);
      return;
    }
    set_ = true;
  }
  ~Immutable() {
    if (set_) ::ioctl(fd_, FS_IOC_SETFLAGS, &flags_);
    if (fd_ >= 0) ::close(fd_);
  }
  Immutable(const Immutable&) = delete;
  Immutable& operator=(const Immutable&) = delete;
  bool ok() const { return set_; }
  const std::string& error() const { return error_; }

 private:
  int fd_;
  int flags_ = 0;
  bool set_ = false;
  std::string error_;
};

// vigil's log read through a FIFO: a regular log file would itself hit the lowered file-size
// limit and lose the very lines the test looks for.
class FifoLog {
 public:
  explicit FifoLog(const std::string& path) {
    if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path);
    // Non-blocking, so opening does not wait for the writer (vigil opens it after the fork).
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
    if (fd_ < 0) throw std::runtime_error("open " + path);
    reader_ = std::thread([this] { read_until_stopped(); });
  }
  ~FifoLog() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  void read_until_stopped() {
    char buffer[4096];
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n > 0) {
        std::lock_guard lock(mutex_);
        text_.append(buffer, std::size_t(n));
      } else {
        // No writer (yet, or any more): POLLHUP would return at once, so pace the loop.
        std::this_thread::sleep_for(20ms);
      }
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::string text_;
  std::thread reader_;
};

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

class StorageFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    json services = json::array();
    for (int i = 0; i < kServices; ++i)
      services.push_back({{"name", "svc-" + std::to_string(i)},
                          {"url", target.url("/hits/probe")},
                          {"interval_seconds", kIntervalSeconds}});
    std::ofstream(dir.file("services.json")) << services.dump(2);
  }

  void start(std::map<std::string, std::string> env = {}) {
    log = std::make_unique<FifoLog>(dir.file("run.log"));
    vigil = std::make_unique<VigilProcess>(dir, "run", api_port, std::move(env));
    ASSERT_TRUE(eventually([&] { return healthz().first == 200; }, 10s)) << log->text();
    ASSERT_TRUE(eventually([&] { return metric("vigil_writer_committed_ticks_total") > 0; }, 5s));
  }

  std::pair<int, json> healthz() {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(3);
    const auto result = client.Get("/healthz");
    if (!result) return {0, json()};
    return {result->status, json::parse(result->body, nullptr, false)};
  }

  // A metric without labels from /metrics; -1 when the scrape fails or it is absent.
  double metric(const std::string& name) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_connection_timeout(1);
    client.set_read_timeout(3);
    const auto result = client.Get("/metrics");
    if (!result || result->status != 200) return -1;
    std::istringstream lines(result->body);
    std::string line;
    while (std::getline(lines, line))
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
  }

  // Ticks in the database, read by this process on its own connection.
  std::int64_t stored_ticks(std::int64_t from_ms = 0, std::int64_t to_ms = INT64_MAX) {
    SQLite::Database db(dir.file("vigil.db"), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    SQLite::Statement count(db, "SELECT COUNT(*) FROM service_ticks WHERE ts >= ? AND ts <= ?");
    count.bind(1, from_ms);
    count.bind(2, to_ms);
    count.executeStep();
    return count.getColumn(0).getInt64();
  }

  static std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  void set_file_size_limit(rlim_t soft) {
    const rlimit limit{soft, RLIM_INFINITY};
    ASSERT_EQ(::prlimit(vigil->process().pid(), RLIMIT_FSIZE, &limit, nullptr), 0)
        << "prlimit: " << std::strerror(errno);
  }

  // While the fault lasts: 503 naming the storage failure, probes going on, errors counted,
  // nothing committed, ticks waiting in the queue. `expect_reason` matches SQLite's message.
  void expect_failing(const std::string& expect_reason) {
    std::pair<int, json> health;
    ASSERT_TRUE(eventually(
        [&] {
          health = healthz();
          return health.first == 503;
        },
        8s))
        << log->text();
    EXPECT_EQ(health.second["data"]["storage"], "failing") << health.second.dump();
    const std::string reason = health.second["data"].value("storage_error", "");
    EXPECT_TRUE(std::regex_search(reason, std::regex(expect_reason))) << reason;
    EXPECT_NE(health.second.value("error", "").find("storage writes failing"), std::string::npos)
        << health.second.dump();

    const double errors = metric("vigil_storage_errors_total");
    EXPECT_GE(errors, 1);
    const double committed = metric("vigil_writer_committed_ticks_total");
    const int hits = target.hits("probe");
    std::this_thread::sleep_for(1500ms);
    // At 5 probes per second per service, well over 10 more in 1.5 s, none of them committed.
    EXPECT_GE(target.hits("probe"), hits + 10) << "probes stopped during the storage fault";
    EXPECT_EQ(metric("vigil_writer_committed_ticks_total"), committed);
    EXPECT_GE(metric("vigil_writer_queue_depth"), 10);
    EXPECT_EQ(healthz().first, 503);
  }

  // After the fault: 200 again, the queue drained, and the database holding exactly what the
  // writer says it committed.
  void expect_recovered() {
    ASSERT_TRUE(eventually([&] { return healthz().first == 200; }, 10s)) << log->text();
    EXPECT_EQ(healthz().second["data"]["storage"], "ok");
    ASSERT_TRUE(eventually([&] { return metric("vigil_writer_queue_depth") < kServices * 2; }, 5s));
    // Ticks keep arriving: the stored count lies between two scrapes taken around it.
    const double before = metric("vigil_writer_committed_ticks_total");
    const std::int64_t stored = stored_ticks();
    const double after = metric("vigil_writer_committed_ticks_total");
    EXPECT_LE(before, double(stored));
    EXPECT_GE(after, double(stored));
  }

  // After a fault that dropped nothing: recovered, the ticks probed during [fault_start,
  // fault_end] in the database (about 5 per second per service), the outage logged once when it
  // started and once when it ended (not per retry), and every probe accounted for.
  void expect_held_ticks_written(std::int64_t fault_start, std::int64_t fault_end) {
    expect_recovered();
    EXPECT_EQ(metric("vigil_writer_dropped_ticks_total"), 0);
    const double fault_seconds = double(fault_end - fault_start) / 1000.0;
    EXPECT_GE(double(stored_ticks(fault_start, fault_end)),
              0.6 * kServices * fault_seconds / kIntervalSeconds)
        << "over " << fault_seconds << " s";
    const std::string text = log->text();
    EXPECT_EQ(occurrences(text, "tick record(s) failed"), 1u) << text;
    EXPECT_EQ(occurrences(text, "writes recovered"), 1u) << text;
    expect_every_probe_accounted(0);
  }

  // Stops vigil cleanly; every probe that reached the target is then a stored tick or a counted
  // drop (give or take the probes in flight at the stop, one per service).
  void expect_every_probe_accounted(double dropped) {
    ASSERT_EQ(vigil->stop(), 0) << log->text();
    const int hits = target.hits("probe");
    const std::int64_t stored = stored_ticks();
    EXPECT_GE(double(stored) + dropped, hits - kServices) << "hits " << hits;
    EXPECT_LE(double(stored) + dropped, hits + kServices) << "hits " << hits;
  }

  TempDir dir;
  TargetServer target;
  int api_port = closed_port();
  std::unique_ptr<FifoLog> log;  // declared before vigil: destroyed after it
  std::unique_ptr<VigilProcess> vigil;
};

TEST_F(StorageFaults, DiskFullHoldsTicksInMemoryAndWritesThemWhenItClears) {
  start();
  // Below the size of any WAL frame write: every commit fails, reads still work.
  set_file_size_limit(4096);
  const std::int64_t fault_start = unix_ms();
  expect_failing(kDiskFullReason);
  const double errors_during = metric("vigil_storage_errors_total");
  // Retried (at most 5 s apart), and counted each time.
  EXPECT_TRUE(eventually([&] { return metric("vigil_storage_errors_total") > errors_during; }, 7s));
  const std::int64_t fault_end = unix_ms();
  set_file_size_limit(RLIM_INFINITY);
  expect_held_ticks_written(fault_start, fault_end);
}

TEST_F(StorageFaults, LockHeldByAnotherProcessHoldsTicksUntilReleased) {
  start();
  const std::int64_t fault_start = unix_ms();
  {
    SQLite::Database other(dir.file("vigil.db"), SQLite::OPEN_READWRITE);
    other.exec("BEGIN EXCLUSIVE");
    // vigil waits out its 5 s busy timeout before an attempt fails.
    expect_failing("locked");
    other.exec("COMMIT");
  }
  const std::int64_t fault_end = unix_ms();

  expect_held_ticks_written(fault_start, fault_end);
}

// `vigil run` judges its own parts: a writer held in a commit by another process's lock has not
// progressed, so /healthz names the writer (not the runner or alerter, which go on) and for how
// long, beside the storage error; released, the writer is alive again.
TEST_F(StorageFaults, AWriterHeldByALockIsReportedSilent) {
  start({{"HEALTH_BEAT_SECONDS", "0.5"}, {"HEALTH_SILENT_AFTER_SECONDS", "3"}});
  {
    SQLite::Database other(dir.file("vigil.db"), SQLite::OPEN_READWRITE);
    other.exec("BEGIN EXCLUSIVE");
    std::pair<int, json> health;
    ASSERT_TRUE(eventually(
        [&] {
          health = healthz();
          return health.first == 503 &&
                 health.second.value(json::json_pointer("/data/writer/status"), json()) == "silent";
        },
        10s))
        << health.second.dump() << log->text();
    const json& data = health.second["data"];
    EXPECT_GT(data["writer"]["age_seconds"].get<double>(), 3.0) << data.dump();
    EXPECT_EQ(data["runner"]["status"], "alive") << data.dump();
    EXPECT_EQ(data["alerter"]["status"], "alive") << data.dump();
    const std::string error = health.second.value("error", "");
    EXPECT_NE(error.find("writer silent for "), std::string::npos) << error;
    EXPECT_EQ(error.find("runner silent"), std::string::npos) << error;
    other.exec("COMMIT");
  }
  std::pair<int, json> health;
  ASSERT_TRUE(eventually(
      [&] {
        health = healthz();
        return health.first == 200;
      },
      15s))
      << health.second.dump() << log->text();
  EXPECT_EQ(health.second["data"]["writer"]["status"], "alive");
  EXPECT_EQ(vigil->stop(), 0) << log->text();
}

TEST_F(StorageFaults, ReadOnlyDatabaseHoldsTicksUntilItIsWritableAgain) {
  start();
  const std::int64_t fault_start = unix_ms();
  {
    // The database and its write-ahead log: a commit appends to the log, a checkpoint writes
    // the database.
    Immutable database(dir.file("vigil.db"));
    Immutable wal(dir.file("vigil.db-wal"));
    if (!database.ok() || !wal.ok())
      GTEST_SKIP() << "this file system cannot make a file read-only for root: " << database.error()
                   << wal.error();
    expect_failing("disk I/O error|readonly|read-only");
  }
  const std::int64_t fault_end = unix_ms();

  expect_held_ticks_written(fault_start, fault_end);
}

TEST_F(StorageFaults, FullQueueDropsTheOldestTicksAndCountsThem) {
  constexpr int kMaxQueue = 20;
  start({{"STORAGE_QUEUE_MAX_TICKS", std::to_string(kMaxQueue)}});
  set_file_size_limit(4096);
  expect_failing(kDiskFullReason);  // holds the fault for a few seconds: ~25 ticks a second
  EXPECT_TRUE(eventually([&] { return metric("vigil_writer_dropped_ticks_total") > 0; }, 3s));
  // The queue never grows past its limit (plus the one batch being retried, taken from it).
  EXPECT_LE(metric("vigil_writer_queue_depth"), 2 * kMaxQueue);
  set_file_size_limit(RLIM_INFINITY);

  expect_recovered();
  const double dropped = metric("vigil_writer_dropped_ticks_total");
  EXPECT_GT(dropped, 0);
  EXPECT_NE(log->text().find("write queue is full (20 records)"), std::string::npos) << log->text();
  expect_every_probe_accounted(dropped);
}

// A push is answered 200 only once its tick is committed: readable by another process the
// moment the answer arrives. While another process holds the database's lock the writer cannot
// commit, so the push waits out the API's bound for writes (5 s) and is answered 503, never 200;
// once the lock is gone pushes are 200 again.
TEST_F(StorageFaults, APushIsAnswered503WhileItsTickCannotBeCommitted) {
  json services = json::parse(std::ifstream(dir.file("services.json")));
  services.push_back({{"name", "job"}, {"kind", "heartbeat"}, {"interval_seconds", 3600}});
  std::ofstream(dir.file("services.json")) << services.dump(2);
  start();
  std::string token;
  {
    SQLite::Database db(dir.file("vigil.db"), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    token = db.execAndGet("SELECT push_token FROM services WHERE name = 'job'").getString();
  }
  ASSERT_FALSE(token.empty());
  // Pushes from one process, the reads of the tick from this one's own connection.
  const auto push = [&](const std::string& msg) {
    httplib::Client client("127.0.0.1", api_port);
    client.set_read_timeout(15);
    const auto result = client.Post("/v1/push/" + token + "?msg=" + msg);
    return result ? result->status : 0;
  };
  const auto stored = [&](const std::string& msg) {
    SQLite::Database db(dir.file("vigil.db"), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    SQLite::Statement count(db, "SELECT COUNT(*) FROM service_ticks WHERE message = ?");
    count.bind(1, msg);
    count.executeStep();
    return count.getColumn(0).getInt64();
  };
  for (int i = 0; i < 5; ++i) {
    const std::string msg = "before-" + std::to_string(i);
    ASSERT_EQ(push(msg), 200) << log->text();
    EXPECT_EQ(stored(msg), 1) << msg << " answered 200 but not stored";
  }
  {
    SQLite::Database other(dir.file("vigil.db"), SQLite::OPEN_READWRITE);
    other.exec("BEGIN EXCLUSIVE");
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(push("during"), 503) << log->text();
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_GE(waited, 4900ms);
    EXPECT_LT(waited, 9s);
    other.exec("COMMIT");
  }
  EXPECT_EQ(push("after"), 200) << log->text();
  EXPECT_EQ(stored("after"), 1);
  EXPECT_EQ(vigil->stop(), 0) << log->text();
}

}  // namespace
}  // namespace vigil::test
