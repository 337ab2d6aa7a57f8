// RetentionCleaner: the thread that deletes raw ticks older than the retention period (Settings
// RETENTION_DAYS) and rollup rows older than theirs (RETENTION_MINUTE_DAYS,
// RETENTION_HOUR_DAYS, which day rows share), once at start and then every `interval`. A
// minute's only tick stands for its minute row, so it is kept as long as minute rows are. It
// deletes in small batches, each its own short transaction, with a pause between them, so the
// writer and the API never wait long behind it. Metrics and events are kept: they summarise what
// the deleted ticks said.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

#include "core/model.h"
#include "storage/store.h"

namespace vigil {

struct RetentionOptions {
  Millis retention{30LL * 24 * 3600 * 1000};  // ticks older than this go; zero: none ever go
  Millis interval{3'600'000};                 // between cleanups
  std::size_t batch_size = 1000;              // ticks per transaction
  Millis pause{5};                            // between batches: room for the writer
  // Rollup rows older than these go (zero: none ever go), in the same cleanup.
  Millis minute_retention{30LL * 24 * 3600 * 1000};
  Millis hour_retention{400LL * 24 * 3600 * 1000};
};

class RetentionCleaner {
 public:
  // Starts the thread (none when every retention is zero). `store` must outlive the cleaner.
  RetentionCleaner(Store& store, RetentionOptions options);
  ~RetentionCleaner();  // stop()
  RetentionCleaner(const RetentionCleaner&) = delete;
  RetentionCleaner& operator=(const RetentionCleaner&) = delete;

  // Ends a cleanup in progress after its current batch and joins the thread. Idempotent.
  void stop();

 private:
  void run();
  // One cleanup: batches until none is left older than now - retention, or stop() was called.
  void clean();
  bool stopping(std::chrono::steady_clock::duration wait);  // waits, then whether to stop

  Store& store_;
  const RetentionOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace vigil
