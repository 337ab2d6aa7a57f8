#include "storage/writer.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <string>
#include <utility>

#include "core/logging.h"

namespace vigil {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Once stop() is called, a still-failing batch gets this many more attempts before what is left
// is dropped, so shutdown cannot hang on a broken disk.
constexpr int kAttemptsAfterStop = 3;
// A full queue drops on every submit; one warning per interval says how many.
constexpr auto kDropLogInterval = std::chrono::seconds(10);

}  // namespace

std::chrono::milliseconds writer_retry_delay(const WriterOptions& options,
                                             std::uint64_t failed_attempts, bool stopping) {
  auto delay = options.first_retry_delay;
  if (stopping) return delay;
  for (std::uint64_t i = 1; i < failed_attempts && delay < options.max_retry_delay; ++i) {
    delay *= 2;
  }
  return std::min(delay, std::max(options.max_retry_delay, options.first_retry_delay));
}

struct Writer::Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : batch_size(prometheus::BuildHistogram()
                       .Name("vigil_writer_batch_size")
                       .Help("Tick records per batch committed by the storage writer.")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{1, 10, 50, 100, 250, 500,
                                                                        1000, 2500, 5000, 10000,
                                                                        25000, 50000, 100000})),
        batch_duration(
            prometheus::BuildHistogram()
                .Name("vigil_writer_batch_duration_seconds")
                .Help("Time to commit one batch of tick records, in seconds.")
                .Register(registry)
                .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                                 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                                 2.5, 5, 10})),
        queue_depth(prometheus::BuildGauge()
                        .Name("vigil_writer_queue_depth")
                        .Help("Tick records waiting to be committed by the storage writer.")
                        .Register(registry)
                        .Add({})),
        committed(prometheus::BuildCounter()
                      .Name("vigil_writer_committed_ticks_total")
                      .Help("Tick records committed to storage.")
                      .Register(registry)
                      .Add({})),
        errors(prometheus::BuildCounter()
                   .Name("vigil_storage_errors_total")
                   .Help("Failed attempts to commit a batch of tick records; each is retried.")
                   .Register(registry)
                   .Add({})),
        dropped(prometheus::BuildCounter()
                    .Name("vigil_writer_dropped_ticks_total")
                    .Help("Tick records dropped without being committed (queue full or "
                          "storage still failing at shutdown).")
                    .Register(registry)
                    .Add({})),
        folded(prometheus::BuildCounter()
                   .Name("vigil_writer_folded_transitions_total")
                   .Help("Status-change tick records dropped from a full queue whose event was "
                         "kept, folded into the service's next record.")
                   .Register(registry)
                   .Add({})),
        corrupt_rows(prometheus::BuildCounter()
                         .Name("vigil_storage_corrupt_rows_total")
                         .Help("Corrupt rollup rows found while writing ticks, each rebuilt from "
                               "the ticks of its period (the rest of the batch written as usual).")
                         .Register(registry)
                         .Add({})) {}

  prometheus::Histogram& batch_size;
  prometheus::Histogram& batch_duration;
  prometheus::Gauge& queue_depth;
  prometheus::Counter& committed;
  prometheus::Counter& errors;
  prometheus::Counter& dropped;
  prometheus::Counter& folded;
  prometheus::Counter& corrupt_rows;
};

Writer::Writer(Store& store, prometheus::Registry& registry, WriterOptions options)
    : store_(store),
      options_(options),
      metrics_(std::make_unique<Metrics>(registry)),
      queue_(std::max<std::size_t>(options.max_queue, 1)) {
  options_.max_batch = std::max<std::size_t>(options_.max_batch, 1);
  options_.max_queue = std::max<std::size_t>(options_.max_queue, 1);
  options_.flush_interval = std::max(options_.flush_interval, std::chrono::milliseconds(1));
  last_alive_ms_ = to_unix_ms(now_ms());
  last_progress_ms_ = last_alive_ms_.load();
  thread_ = std::thread([this] { run(); });
}

Writer::~Writer() { stop(); }

void Writer::submit(TickRecord record) {
  std::uint64_t dropped_to_log = 0;
  std::uint64_t folded_to_log = 0;
  std::uint64_t lost_to_log = 0;
  bool after_stop = false;
  {
    std::lock_guard lock(mutex_);
    // stop() drains what was queued before it; accepting more would let a busy producer keep
    // the writer from ever finishing.
    const bool drop_new = stopping_;
    WriteQueue::Shed shed = WriteQueue::Shed::none;
    if (!drop_new) {
      // A record refused after stop() never gets a sequence number: front_seq() must stay the
      // number of the oldest queued record, or submitted_ when none is, which flush() relies on.
      const bool awaited = record.stored.awaited();
      shed = queue_.push(std::move(record), submitted_++);
      // One wake-up when a full batch is ready, or for the first record someone waits on; the
      // timed wait covers everything else.
      if (queue_.size() == options_.max_batch || (awaited && !awaited_queued_)) {
        awaited_queued_ = awaited_queued_ || awaited;
        wake_.notify_one();
      }
    }
    if (shed != WriteQueue::Shed::none) ++handled_;
    if (drop_new || shed == WriteQueue::Shed::plain_tick || shed == WriteQueue::Shed::transition) {
      ++dropped_;
      metrics_->dropped.Increment();
      ++drops_unlogged_;
      if (shed == WriteQueue::Shed::transition) ++lost_transitions_unlogged_;
    } else if (shed == WriteQueue::Shed::folded) {
      ++folded_;
      metrics_->folded.Increment();
      ++folds_unlogged_;
    }
    const auto now = SteadyClock::now();
    if ((drops_unlogged_ > 0 || folds_unlogged_ > 0) && now - drop_logged_at_ >= kDropLogInterval) {
      drop_logged_at_ = now;
      dropped_to_log = std::exchange(drops_unlogged_, 0);
      folded_to_log = std::exchange(folds_unlogged_, 0);
      lost_to_log = std::exchange(lost_transitions_unlogged_, 0);
      after_stop = drop_new;
    }
  }
  log_drops(dropped_to_log, folded_to_log, lost_to_log,
            after_stop
                ? "the writer is stopped"
                : "the write queue is full (" + std::to_string(options_.max_queue) + " records)");
}

void Writer::log_drops(std::uint64_t dropped, std::uint64_t folded, std::uint64_t lost,
                       const std::string& why) const {
  if (dropped > 0) {
    log_warn("storage: dropped " + std::to_string(dropped) + " tick record(s): " + why);
  }
  if (lost > 0) {
    log_error("storage: " + std::to_string(lost) +
              " of them changed a status and were lost from the event history: every queued "
              "record changes a status (STORAGE_QUEUE_MAX_TICKS is below the number of "
              "services)");
  }
  if (folded > 0) {
    log_warn(
        "storage: dropped the tick of " + std::to_string(folded) +
        " status change(s) and kept their events, carried by the service's next record: " + why);
  }
}

void Writer::flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = submitted_;
  const std::uint64_t failures_before = failed_batches_.load();
  // Records are handled in submission order: the batch in flight holds the oldest, the queue
  // the rest, so "all before target" means neither holds a record numbered below it.
  const auto done = [&] {
    const bool batch_done = in_flight_count_ == 0 || in_flight_begin_ >= target;
    const bool queue_done = queue_.front_seq().value_or(submitted_) >= target;
    return finished_ || (batch_done && queue_done) || failed_batches_.load() != failures_before;
  };
  if (done()) return;
  flush_target_ = std::max(flush_target_, target);
  wake_.notify_one();
  drained_.wait(lock, done);
}

void Writer::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  });
}

TimePoint Writer::last_alive() const { return from_unix_ms(last_alive_ms_.load()); }
TimePoint Writer::last_progress() const { return from_unix_ms(last_progress_ms_.load()); }

std::size_t Writer::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + in_flight_count_;
}

std::uint64_t Writer::committed_records() const { return committed_.load(); }
std::uint64_t Writer::failed_batches() const { return failed_batches_.load(); }
std::uint64_t Writer::dropped_records() const { return dropped_.load(); }
std::uint64_t Writer::folded_records() const { return folded_.load(); }

std::string Writer::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void Writer::run() {
  std::vector<TickRecord> batch;  // taken from the queue; kept across failed attempts
  SteadyClock::time_point next_attempt{};
  std::uint64_t streak = 0;  // consecutive failed attempts
  int attempts_after_stop = 0;
  std::uint64_t unlogged_drops = 0;
  std::uint64_t unlogged_folds = 0;
  std::uint64_t unlogged_lost = 0;
  // The store's count of rebuilt rows already added to the counter (the store may have been
  // written before this writer was made).
  std::uint64_t corrupt_rows_seen = store_.corrupt_rows_rebuilt();

  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      if (batch.empty()) {
        wake_.wait_for(lock, options_.flush_interval, [&] {
          return stopping_ || awaited_queued_ || queue_.size() >= options_.max_batch ||
                 flush_target_ > queue_.front_seq().value_or(submitted_);
        });
        const auto take = std::min(queue_.size(), options_.max_batch);
        if (take > 0) {
          in_flight_begin_ = *queue_.front_seq();
          in_flight_count_ = take;
          batch.reserve(take);
          while (batch.size() < take) batch.push_back(queue_.pop_front());
        }
        // What is left (a backlog past max_batch) may still hold an awaited record.
        awaited_queued_ = awaited_queued_ && !queue_.empty();
      } else {
        // Retrying: sleep until the retry is due, in flush_interval steps so last_alive moves.
        const auto until = std::min(next_attempt, SteadyClock::now() + options_.flush_interval);
        wake_.wait_until(lock, until, [] { return false; });
      }
      stopping = stopping_;
      metrics_->queue_depth.Set(static_cast<double>(queue_.size() + in_flight_count_));
      // submit() reports the first drop at once; drops after it in the same interval are
      // reported from here, so a burst that stops is still reported in full.
      const auto now = SteadyClock::now();
      if ((drops_unlogged_ > 0 || folds_unlogged_ > 0) &&
          now - drop_logged_at_ >= kDropLogInterval) {
        drop_logged_at_ = now;
        unlogged_drops = std::exchange(drops_unlogged_, 0);
        unlogged_folds = std::exchange(folds_unlogged_, 0);
        unlogged_lost = std::exchange(lost_transitions_unlogged_, 0);
      }
    }
    last_alive_ms_ = to_unix_ms(now_ms());
    log_drops(std::exchange(unlogged_drops, 0), std::exchange(unlogged_folds, 0),
              std::exchange(unlogged_lost, 0), "the write queue was full or the writer stopped");

    if (batch.empty()) {
      last_progress_ms_ = last_alive_ms_.load();  // nothing to commit
      if (stopping) break;  // submit() refuses new records once stopping, so this is drained
      continue;
    }
    if (SteadyClock::now() < next_attempt) continue;

    const auto started = SteadyClock::now();
    std::string error;
    try {
      store_.apply(batch);
      const std::chrono::duration<double> took = SteadyClock::now() - started;
      metrics_->batch_size.Observe(static_cast<double>(batch.size()));
      metrics_->batch_duration.Observe(took.count());
      metrics_->committed.Increment(static_cast<double>(batch.size()));
      committed_ += batch.size();
      // Only now: a waiter told `committed` may answer that the record is stored.
      for (const TickRecord& record : batch) record.stored.committed();
      if (const auto rebuilt = store_.corrupt_rows_rebuilt(); rebuilt > corrupt_rows_seen) {
        metrics_->corrupt_rows.Increment(static_cast<double>(rebuilt - corrupt_rows_seen));
        corrupt_rows_seen = rebuilt;
      }
      last_progress_ms_ = to_unix_ms(now_ms());
      if (streak > 0) {
        log_info("storage: writes recovered after " + std::to_string(streak) +
                 " failed attempt(s)");
      }
      streak = 0;
      {
        std::lock_guard lock(mutex_);
        handled_ += batch.size();
        in_flight_count_ = 0;
        failure_.clear();
        metrics_->queue_depth.Set(static_cast<double>(queue_.size()));
      }
      batch.clear();
      drained_.notify_all();
      continue;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown error";
    }
    // Logged once per outage (and once at recovery), not once per retry.
    if (streak == 0) {
      log_error("storage: committing " + std::to_string(batch.size()) +
                " tick record(s) failed, holding them in memory (at most " +
                std::to_string(options_.max_queue) + " queued) and retrying, at first after " +
                std::to_string(options_.first_retry_delay.count()) + " ms: " + error);
    }

    ++streak;
    metrics_->errors.Increment();
    next_attempt = SteadyClock::now() + writer_retry_delay(options_, streak, stopping);
    std::uint64_t gave_up = 0;
    {
      std::lock_guard lock(mutex_);
      ++failed_batches_;
      failure_ = error.empty() ? "unknown error" : error;
      if (stopping && ++attempts_after_stop >= kAttemptsAfterStop) {
        gave_up = batch.size() + queue_.size();
        handled_ += gave_up;
        dropped_ += gave_up;
        metrics_->dropped.Increment(static_cast<double>(gave_up));
        queue_.clear();
        in_flight_count_ = 0;
        batch.clear();
      }
    }
    drained_.notify_all();
    if (gave_up > 0) {
      log_error("storage: still failing at shutdown after " + std::to_string(streak) +
                " attempt(s); dropped " + std::to_string(gave_up) + " tick record(s)");
    }
  }

  {
    std::lock_guard lock(mutex_);
    finished_ = true;
    metrics_->queue_depth.Set(0);
    unlogged_drops = std::exchange(drops_unlogged_, 0);
    unlogged_folds = std::exchange(folds_unlogged_, 0);
    unlogged_lost = std::exchange(lost_transitions_unlogged_, 0);
  }
  drained_.notify_all();
  log_drops(unlogged_drops, unlogged_folds, unlogged_lost, "the write queue was full");
}

}  // namespace vigil
