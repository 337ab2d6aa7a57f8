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

std::uint64_t Checkpointer::passes() const {
  std::lock_guard lock(mutex_);
  return passes_;
}

std::uint64_t Checkpointer::restarts() const {
  std::lock_guard lock(mutex_);
  return restarts_;
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
  bool start = false;
  {
    std::unique_lock lock(mutex_);
    const bool at_bound = wal_pages >= restart_at_;
    if (pass_finished_ || at_bound) {
      // This commit's caller waits (appending nothing) while the thread copies what its pass
      // left and waits for readers on older snapshots (RESTART): the next transaction starts
      // the WAL over. At the bound (the thread cannot keep up, or a restart failed) the same
      // wait bounds the WAL's length.
      pass_finished_ = false;
      restart_requested_ = true;
      restart_wait_ = at_bound ? std::chrono::milliseconds(kBusyTimeoutMs) : kRestartWait;
      wake_.notify_one();
      idle_.wait(lock, [this] { return !restart_requested_; });
      if (at_bound) restart_at_ = wal_pages + kCheckpointPages;  // not tried again per commit
    } else if (!running_ && !requested_ && wal_pages - copied_through_ >= kCheckpointPages) {
      requested_ = true;
      start = true;
      copied_through_ = wal_pages;
    }
  }
  if (start) wake_.notify_one();
}

void Checkpointer::run() {
  bool failing = false;  // one warning per run of failures
  const auto checkpoint = [&](int mode, int& wal_frames, int& copied) {
    const int rc =
        sqlite3_wal_checkpoint_v2(connection_->getHandle(), nullptr, mode, &wal_frames, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && !failing) {
      log_warn(std::string("storage: WAL checkpoint failed, retried as the WAL grows: ") +
               sqlite3_errmsg(connection_->getHandle()));
    }
    failing = rc != SQLITE_OK && rc != SQLITE_BUSY;
    return rc;
  };
  for (;;) {
    bool restart = false;
    std::chrono::milliseconds wait{0};
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return requested_ || restart_requested_ || stopping_; });
      if (stopping_) return;
      restart = restart_requested_;
      wait = restart_wait_;
      requested_ = false;
      running_ = true;
    }
    int wal_frames = 0;
    int copied = 0;
    if (restart) {
      // Waits for readers on older snapshots for at most `wait` (the busy handler).
      sqlite3_busy_timeout(connection_->getHandle(), static_cast<int>(wait.count()));
      checkpoint(SQLITE_CHECKPOINT_RESTART, wal_frames, copied);
    } else {
      // Passes until what is left is small: each copies what the writer appended during the
      // one before, so they grow shorter while the writer goes on.
      int copied_before = 0;
      for (int pass = 0; pass < kMaxPasses; ++pass) {
        const int rc = checkpoint(SQLITE_CHECKPOINT_PASSIVE, wal_frames, copied);
        // A pass that copied little leaves little: what the writer appended while it ran.
        if (rc != SQLITE_OK || copied - copied_before <= kPassAgainPages) break;
        copied_before = copied;
        std::lock_guard lock(mutex_);
        if (stopping_ || restart_requested_) break;
      }
    }
    {
      std::lock_guard lock(mutex_);
      running_ = false;
      if (restart) {
        ++restarts_;
        restart_requested_ = false;
        pass_finished_ = false;  // the RESTART copied everything
      } else {
        ++passes_;
        pass_finished_ = true;
      }
    }
    idle_.notify_all();
  }
}

}  // namespace vigil::sqlite
