#include "storage/retention.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "core/logging.h"

namespace vigil {

RetentionCleaner::RetentionCleaner(Store& store, RetentionOptions options)
    : store_(store), options_(options) {
  if (options_.retention > Millis::zero() || options_.minute_retention > Millis::zero() ||
      options_.hour_retention > Millis::zero())
    thread_ = std::thread([this] { run(); });
}

RetentionCleaner::~RetentionCleaner() { stop(); }

void RetentionCleaner::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RetentionCleaner::stopping(std::chrono::steady_clock::duration wait) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, wait, [this] { return stop_requested_; });
}

void RetentionCleaner::run() {
  do {
    clean();
  } while (!stopping(options_.interval));
}

void RetentionCleaner::clean() {
  const TimePoint now = now_ms();
  const TimePoint cutoff = now - options_.retention;
  const auto started = std::chrono::steady_clock::now();
  std::size_t total = 0;
  // Batches of one kind of row until none is left older than its cutoff; false once stopping.
  const auto drain = [&](auto&& delete_batch) {
    for (;;) {
      const std::size_t deleted = delete_batch();
      total += deleted;
      if (deleted < options_.batch_size) return true;
      if (stopping(options_.pause)) return false;
    }
  };
  try {
    // Minute rollups are kept for the minute retention (see Store::delete_ticks_older_than).
    const std::optional<TimePoint> lone_cutoff =
        options_.minute_retention == Millis::zero()
            ? std::nullopt
            : std::optional<TimePoint>(now - options_.minute_retention);
    bool go_on = options_.retention == Millis::zero() || drain([&] {
                   return store_.delete_ticks_older_than(cutoff, lone_cutoff, options_.batch_size);
                 });
    // The rollups, each resolution with its own retention; day rows go with hour rows.
    for (auto [resolution, keep] : {std::pair{RollupResolution::minute, options_.minute_retention},
                                    std::pair{RollupResolution::hour, options_.hour_retention},
                                    std::pair{RollupResolution::day, options_.hour_retention}}) {
      if (!go_on || keep == Millis::zero()) continue;
      go_on = drain([&, resolution = resolution, keep = keep] {
        return store_.delete_rollups_older_than(resolution, now - keep, options_.batch_size);
      });
    }
  } catch (const std::exception& e) {
    // The next cleanup tries again; ticks only wait a little longer to go.
    log_warn(std::string("retention: cleanup failed, retrying in the next interval: ") + e.what());
  }
  if (total > 0) {
    const auto took =
        std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
    log_info("retention: deleted " + std::to_string(total) + " tick(s) and rollup row(s) past" +
             " their retention in " + std::to_string(took.count()) + " ms");
  }
}

std::int64_t TickRetentionWalk::all_before(TimePoint cutoff, std::optional<TimePoint> lone_cutoff) {
  return std::min(to_unix_ms(cutoff), lone_cutoff ? to_unix_ms(*lone_cutoff) : kNoTime);
}

std::size_t TickRetentionWalk::delete_ticks(TimePoint cutoff, std::optional<TimePoint> lone_cutoff,
                                            std::size_t deleted, std::size_t batch_size,
                                            const DeleteFrom& delete_from) {
  if (deleted >= batch_size) return deleted;
  const std::int64_t before = all_before(cutoff, lone_cutoff);
  // Ticks in [lone_from, cutoff) go only when their minute has a row.
  const std::int64_t lone_from = std::max(before, lone_checked_before_);
  bool wrapped = cursor_ == 0;
  for (;;) {
    const Deleted pass =
        delete_from(cursor_, before, lone_from, to_unix_ms(cutoff), batch_size - deleted);
    deleted += pass.ticks;
    if (pass.ticks > 0) cursor_ = pass.last_service;
    if (deleted == batch_size) break;
    // Fewer than asked: every service from the cursor on is clean.
    cursor_ = 0;
    if (wrapped) {
      lone_checked_before_ = std::max(lone_checked_before_, to_unix_ms(cutoff));
      break;
    }
    wrapped = true;
  }
  return deleted;
}

}  // namespace vigil
