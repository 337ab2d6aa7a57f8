// Writer: the one thread that writes ticks. The runner submits TickRecords without ever waiting
// on disk; the writer drains them in batches (every `flush_interval`, or as soon as `max_batch`
// records are queued) and applies each batch in one Store transaction, so ticks, metrics and
// events always agree after a crash.
//
// Commits are published per record: a record whose `stored` promise someone waits on (a pushed
// beat's tick; see core/commit.h) has it resolved `committed` right after the transaction that
// carries it commits, and `dropped` when the record is dropped instead (shed by a full queue,
// submitted after stop(), given up at shutdown). Such a record does not wait out the flush
// interval: the writer takes what is queued as soon as one arrives, so a waiter waits for about
// one commit, and records that arrive meanwhile share the next one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/model.h"
#include "storage/store.h"
#include "storage/write_queue.h"

namespace prometheus {
class Registry;
}

namespace vigil {

struct WriterOptions {
  std::chrono::milliseconds flush_interval{100};
  // A backlog is committed in transactions of up to this many records: a transaction writes
  // each service's metric and rollup rows once and walks each B-tree page once, so larger ones
  // catch up faster (measured at 10,000 services: 74k ticks/s in batches of 10,000, 153k in
  // batches of 100,000, before apply() wrote in key order). Without a backlog a batch is what
  // one flush_interval brought.
  std::size_t max_batch = 100'000;
  // Records waiting in the queue at most (the batch being committed aside), so a long storage
  // outage costs bounded memory. Past it the oldest plain tick is dropped and counted; a status
  // change is never dropped while a plain tick is queued, and then only its tick: its event is
  // folded into its service's next queued record (see WriteQueue).
  std::size_t max_queue = 1'000'000;
  // A failed batch is kept and tried again after first_retry_delay, then after twice as long
  // each time it fails again, up to max_retry_delay: storage faults (a full disk, a lock held by
  // another process, a database server restarting) rarely clear within milliseconds, retrying
  // faster would only spin, and a server coming back is not met by every writer at once.
  // Once stop() is called, retries are first_retry_delay apart, so shutdown stays bounded.
  std::chrono::milliseconds first_retry_delay{1000};
  std::chrono::milliseconds max_retry_delay{5000};
};

// How long the Writer waits before its next attempt at a batch that has failed
// `failed_attempts` (>= 1) times in a row: first_retry_delay doubled per further failure, at
// most max_retry_delay; first_retry_delay while `stopping`.
std::chrono::milliseconds writer_retry_delay(const WriterOptions& options,
                                             std::uint64_t failed_attempts, bool stopping);

class Writer {
 public:
  // Registers vigil_writer_* metrics in `registry` and starts the thread. `store` must outlive
  // the Writer. So must `registry`: the Writer updates metrics that the registry owns.
  Writer(Store& store, prometheus::Registry& registry, WriterOptions options = {});
  // Flushes what is queued, then joins the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues one record. Never blocks on I/O; safe from any thread. What becomes of it is told
  // through record.stored (see above) when that is not empty.
  void submit(TickRecord record);

  // Blocks until everything submitted before the call is committed (or failed). For shutdown
  // and tests.
  void flush();

  // Writes what is queued and stops the thread. Idempotent.
  void stop();

  // When the thread last completed a loop iteration.
  TimePoint last_alive() const;
  // When the writer last made progress: committed a batch, or found nothing to commit. A writer
  // stuck in a commit or retrying a failing one does not move it; /healthz reads it. Any thread.
  TimePoint last_progress() const;
  std::size_t queue_depth() const;
  std::uint64_t committed_records() const;
  std::uint64_t failed_batches() const;
  // Records dropped with what they said: plain ticks shed by a full queue, records submitted
  // after stop(), those still failing when stop() gave up, and status changes a full queue
  // could not fold (only when max_queue is below the number of services).
  std::uint64_t dropped_records() const;
  // Status changes whose tick a full queue dropped while their event was kept, folded into the
  // service's next record.
  std::uint64_t folded_records() const;
  // While commits fail (from the first failed attempt until one succeeds): the last error, as
  // the backend reported it (e.g. "database or disk is full"); empty otherwise.
  // /healthz reports it.
  std::string failure() const;

 private:
  struct Metrics;
  void run();
  // Logs what a full or stopped queue shed since the last report (nothing when all are 0).
  void log_drops(std::uint64_t dropped, std::uint64_t folded, std::uint64_t lost,
                 const std::string& why) const;

  Store& store_;
  WriterOptions options_;
  std::unique_ptr<Metrics> metrics_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable drained_;
  WriteQueue queue_;             // guarded by mutex_
  std::uint64_t submitted_ = 0;  // guarded by mutex_
  std::uint64_t handled_ = 0;    // records committed or dropped; guarded by mutex_
  bool stopping_ = false;
  bool finished_ = false;              // run() has returned; guarded by mutex_
  std::uint64_t in_flight_begin_ = 0;  // sequence number of the batch being applied
  std::size_t in_flight_count_ = 0;    // its size; 0 when none; guarded by mutex_
  std::uint64_t flush_target_ = 0;     // flush() waits for records below this; guarded by mutex_
  bool awaited_queued_ = false;        // a queued record is waited on; guarded by mutex_
  std::chrono::steady_clock::time_point drop_logged_at_{};  // guarded by mutex_
  std::uint64_t drops_unlogged_ = 0;                        // guarded by mutex_
  std::uint64_t folds_unlogged_ = 0;                        // guarded by mutex_
  std::uint64_t lost_transitions_unlogged_ = 0;             // guarded by mutex_
  std::string failure_;                                     // guarded by mutex_
  std::once_flag stop_once_;

  std::atomic<std::int64_t> last_alive_ms_{0};
  std::atomic<std::int64_t> last_progress_ms_{0};
  std::atomic<std::uint64_t> committed_{0};
  std::atomic<std::uint64_t> failed_batches_{0};  // incremented under mutex_ (flush waits on it)
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> folded_{0};
  std::thread thread_;
};

}  // namespace vigil
