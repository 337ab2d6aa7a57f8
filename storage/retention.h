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
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
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

// The walk a backend's Store::delete_ticks_older_than makes through the services, the same on
// every backend. Batches take the services in id order from where the last one stopped and wrap
// around once. A lone tick (its minute's only tick, which stands for the minute's row) is kept
// while its minute has no row; the walk remembers below which time every lone tick was checked,
// so later cleanups never look at those again (minute rows are not written for old minutes).
//
// Thread-safety: none; a backend keeps one per store and calls it under its write lock.
class TickRetentionWalk {
 public:
  // What one DeleteFrom call deleted: how many ticks, and the highest service id among them
  // (read only when ticks > 0).
  struct Deleted {
    std::size_t ticks = 0;
    ServiceId last_service = 0;
  };
  // The backend's pass, in one transaction, over the services with id >= first_service in id
  // order: deletes up to `limit` ticks with ts < all_before, or with ts in [lone_from, cutoff)
  // whose minute has a row (times in unix ms). Whatever it throws propagates out of
  // delete_ticks, and the walk goes on from where it was.
  using DeleteFrom =
      std::function<Deleted(ServiceId first_service, std::int64_t all_before,
                            std::int64_t lone_from, std::int64_t cutoff, std::size_t limit)>;

  // Ticks before this go whatever their minute: the earlier of `cutoff` and `lone_cutoff`, or no
  // time at all when there is no lone_cutoff (minute rows are kept forever, and so are lone
  // ticks).
  static std::int64_t all_before(TimePoint cutoff, std::optional<TimePoint> lone_cutoff);

  // Store::delete_ticks_older_than's walk: calls `delete_from` until `batch_size` ticks are
  // gone, counting the `deleted` a backend removed otherwise first (whole partitions), or until
  // a whole round of the services found fewer. Returns the total, `deleted` included.
  std::size_t delete_ticks(TimePoint cutoff, std::optional<TimePoint> lone_cutoff,
                           std::size_t deleted, std::size_t batch_size,
                           const DeleteFrom& delete_from);

 private:
  static constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

  ServiceId cursor_ = 0;                        // the service the next batch starts from
  std::int64_t lone_checked_before_ = kNoTime;  // every lone tick before it has no minute row
};

}  // namespace vigil
