#include "storage/sqlite/sqlite_checkpointer.h"

#include <sqlite3.h>

#include <string>

#include "core/logging.h"
#include "storage/sqlite/sqlite_connection.h"

namespace vigil::sqlite {

Checkpointer::Checkpointer(const std::string& path, SQLite::Database& writer)
    : writer_(writer),
      connection_(std::make_unique<SQLite::Database>(
          path, SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX, kBusyTimeoutMs)) {
  // A connection learns that the file is in WAL mode when it first reads it; until then a
  // checkpoint on it does nothing.
  const auto mode = connection_->execAndGet("PRAGMA journal_mode").getString();
  if (mode != "wal") throw SQLite::Exception("checkpoints: " + path + " is not in WAL mode");
  thread_ = std::thread([this] { run(); });
  // Replaces the autocheckpoint hook (a connection has one WAL hook).
  sqlite3_wal_hook(writer_.getHandle(), &Checkpointer::on_commit, this);
}

Checkpointer::~Checkpointer() {
  sqlite3_wal_autocheckpoint(writer_.getHandle(), kCheckpointPages);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t Checkpointer::background_checkpoints() const {
  std::lock_guard lock(mutex_);
  return background_;
}

std::uint64_t Checkpointer::inline_checkpoints() const {
  std::lock_guard lock(mutex_);
  return inline_;
}

int Checkpointer::on_commit(void* self, sqlite3* /*db*/, const char* /*schema*/, int wal_pages) {
  static_cast<Checkpointer*>(self)->committed(wal_pages);
  return SQLITE_OK;
}

void Checkpointer::committed(int wal_pages) {
  if (wal_pages < copied_through_) {  // SQLite started the WAL over
    copied_through_ = 0;
    restart_at_ = kMaxWalPages;
  }
  int inline_mode = -1;  // none
  bool start = false;
  {
    std::unique_lock lock(mutex_);
    if (wal_pages >= restart_at_) {
      // The thread cannot keep up, or readers kept the WAL from starting over: this commit's
      // caller waits for the thread's pass, then copies the rest itself and waits for readers
      // on older snapshots (RESTART), which bounds the WAL's length.
      writer_waiting_ = true;
      idle_.wait(lock, [this] { return !running_; });
      writer_waiting_ = false;
      requested_ = false;
      pass_finished_ = false;
      restart_at_ = wal_pages + kCheckpointPages;  // a failed restart is not tried per commit
      inline_mode = SQLITE_CHECKPOINT_RESTART;
    } else if (pass_finished_) {
      pass_finished_ = false;
      inline_mode = SQLITE_CHECKPOINT_PASSIVE;
    } else if (!running_ && !requested_ && wal_pages - copied_through_ >= kCheckpointPages) {
      requested_ = true;
      start = true;
      copied_through_ = wal_pages;
    }
  }
  if (start) wake_.notify_one();
  if (inline_mode >= 0) checkpoint_inline(inline_mode);
}

void Checkpointer::checkpoint_inline(int mode) {
  int wal_frames = 0;
  int copied = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(writer_.getHandle(), nullptr, mode, &wal_frames, &copied);
  // SQLITE_BUSY: the thread is in a pass (what it leaves is copied after it), or a reader held
  // its snapshot past the busy timeout (tried again kCheckpointPages later).
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    log_warn(std::string("storage: WAL checkpoint failed: ") + sqlite3_errstr(rc));
    return;
  }
  std::lock_guard lock(mutex_);
  ++inline_;
}

void Checkpointer::run() {
  bool failing = false;  // one warning per run of failures
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return requested_ || stopping_; });
      if (stopping_) return;
      requested_ = false;
      running_ = true;
    }
    // Passes until what is left is small: each copies what the writer appended during the one
    // before, so they grow shorter while the writer goes on.
    int copied_before = 0;
    for (int pass = 0; pass < kMaxPasses; ++pass) {
      int wal_frames = 0;
      int copied = 0;
      const int rc = sqlite3_wal_checkpoint_v2(connection_->getHandle(), nullptr,
                                               SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY && !failing) {
        log_warn(std::string("storage: WAL checkpoint failed, retried as the WAL grows: ") +
                 sqlite3_errmsg(connection_->getHandle()));
      }
      failing = rc != SQLITE_OK && rc != SQLITE_BUSY;
      // A pass that copied little leaves little: what the writer appended while it ran.
      if (rc != SQLITE_OK || copied - copied_before <= kInlinePages) break;
      copied_before = copied;
      std::lock_guard lock(mutex_);
      if (stopping_ || writer_waiting_) break;
    }
    {
      std::lock_guard lock(mutex_);
      running_ = false;
      pass_finished_ = true;
      ++background_;
    }
    idle_.notify_all();
  }
}

}  // namespace vigil::sqlite
