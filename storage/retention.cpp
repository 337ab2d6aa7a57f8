#include "storage/retention.h"

#include <exception>
#include <string>

#include "config/logging.h"

namespace vigil {

RetentionCleaner::RetentionCleaner(Store& store, RetentionOptions options)
    : store_(store), options_(options) {
  if (options_.retention > Millis::zero()) thread_ = std::thread([this] { run(); });
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
  const TimePoint cutoff = now_ms() - options_.retention;
  const auto started = std::chrono::steady_clock::now();
  std::size_t total = 0;
  try {
    for (;;) {
      const std::size_t deleted = store_.delete_ticks_older_than(cutoff, options_.batch_size);
      total += deleted;
      if (deleted < options_.batch_size || stopping(options_.pause)) break;
    }
  } catch (const std::exception& e) {
    // The next cleanup tries again; ticks only wait a little longer to go.
    log_warn(std::string("retention: cleanup failed, retrying in the next interval: ") + e.what());
  }
  if (total > 0) {
    const auto took =
        std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
    log_info("retention: deleted " + std::to_string(total) + " tick(s) older than " +
             std::to_string(to_unix_seconds(cutoff)) + " in " + std::to_string(took.count()) +
             " ms");
  }
}

}  // namespace vigil
