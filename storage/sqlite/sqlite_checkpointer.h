// Checkpointer: copies a write connection's WAL back into the database file on a thread of its
// own, so that a commit never waits for the bulk of a checkpoint. Internal to the SQLite backend.
//
// Why: SQLite's own autocheckpoint runs inside the commit that makes the WAL cross its size, on
// the committing thread. vigil's writer commits often (a pushed beat is answered only once its
// tick is committed), so the WAL crosses 64 MB every second or so under load, and each time the
// commit that crosses it copies every page back and syncs the file, while every push waiting
// for the next commit waits too.
//
// How: the write connection's autocheckpoint is turned off (and that of the process's other
// write connections to the file: leave_checkpoints_to_the_store) and a WAL hook, run on the
// writer's thread after each of its commits with the WAL's length, takes its place:
//   - once the WAL has grown by kCheckpointPages since the last cycle, the thread runs PASSIVE
//     checkpoints on a connection of its own: they copy the frames committed so far without
//     taking the write lock, so commits go on meanwhile; it passes again while a pass copied
//     much (the writer appended about as much during it);
//   - then the writer's next commit waits while the thread runs a RESTART checkpoint: it copies
//     the little left (the writer appends nothing meanwhile) and waits for readers still on an
//     older snapshot (up to kRestartWait), so SQLite starts the WAL over at the next
//     transaction;
//   - a WAL that reaches kMaxWalPages all the same (a failed restart, a writer faster than the
//     thread) makes the committing writer wait for a RESTART too, which waits for readers as long
//     as the busy timeout: the WAL's length is bounded (tried again kCheckpointPages later
//     when a read held its snapshot longer still).
// Durability does not change: a commit is in the WAL before it returns, and a checkpoint syncs
// the WAL before it copies frames and the database file after, whichever connection runs it.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace vigil::sqlite {

class Checkpointer {
 public:
  // Growth of the WAL, in pages, between checkpoints (64 MB at 4 KB a page; why so many:
  // connect_for_writing).
  static constexpr int kCheckpointPages = 16'384;
  // The thread passes again while its last pass copied more than this many pages (at most
  // kMaxPasses times): the writer waits for the RESTART that copies the rest.
  static constexpr int kPassAgainPages = 1'024;
  static constexpr int kMaxPasses = 8;
  // How long the RESTART that ends a cycle waits for readers on older snapshots (the writer
  // waits as long): a longer read (a large page of the API) only delays the WAL's start over,
  // to the next cycle.
  static constexpr std::chrono::milliseconds kRestartWait{20};
  // A WAL this long: the committing writer waits for a RESTART whatever the thread is at, and
  // that one waits for readers as long as the busy timeout.
  static constexpr int kMaxWalPages = 4 * kCheckpointPages;

  // Takes over the checkpoints of `writer`, a write connection to the WAL database at `path`
  // (connect_for_writing), and starts the thread. `writer` must outlive the Checkpointer, and
  // every use of it stays with its owner's serialisation (the hook runs inside its commits).
  // Throws SQLite::Exception when the checkpoint connection cannot be opened.
  Checkpointer(const std::string& path, SQLite::Database& writer);
  // Gives `writer` its autocheckpoint back and joins the thread.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Checkpoints run so far by the thread: cycles of PASSIVE passes, and the RESTARTs the writer
  // waited for. For tests; any thread.
  std::uint64_t passes() const;
  std::uint64_t restarts() const;

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void committed(int wal_pages);  // the writer's thread, after each of its commits
  void run();

  SQLite::Database& writer_;
  std::unique_ptr<SQLite::Database> connection_;  // the thread's own

  // The writer's thread only (the hook):
  int copied_through_ = 0;         // the WAL's length when the last checkpoint cycle began
  int restart_at_ = kMaxWalPages;  // the WAL's length at which the writer waits for a RESTART

  mutable std::mutex mutex_;
  std::condition_variable wake_;               // the thread waits for a request
  std::condition_variable idle_;               // the writer waits for the end of a RESTART
  bool requested_ = false;                     // a pass is asked of the thread; guarded by mutex_
  bool running_ = false;                       // the thread is checkpointing; guarded by mutex_
  bool pass_finished_ = false;                 // passes ended; a RESTART is due; guarded by mutex_
  bool restart_requested_ = false;             // the writer waits for a RESTART; guarded by mutex_
  std::chrono::milliseconds restart_wait_{0};  // for readers, in that RESTART; guarded by mutex_
  bool stopping_ = false;                      // guarded by mutex_
  std::uint64_t passes_ = 0;                   // guarded by mutex_
  std::uint64_t restarts_ = 0;                 // guarded by mutex_
  std::thread thread_;
};

}  // namespace vigil::sqlite
