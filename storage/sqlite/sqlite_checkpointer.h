// Checkpointer: copies a write connection's WAL back into the database file on a thread of its
// own, so that a commit never waits for the bulk of a checkpoint. Internal to the SQLite backend.
//
// Why: SQLite's own autocheckpoint runs inside the commit that makes the WAL cross its size, on
// the committing thread. vigil's writer commits often (a pushed beat is answered only once its
// tick is committed), so the WAL crosses 64 MB every second or so under load, and each time the
// commit that crosses it copies every page back and syncs the file, while every push waiting
// for the next commit waits too.
//
// How: the write connection's autocheckpoint is turned off and a WAL hook (run on the writer's
// thread after each of its commits, with the WAL's length) takes its place:
//   - once the WAL has grown by kCheckpointPages since the last checkpoint, the thread runs a
//     PASSIVE checkpoint on a connection of its own: it copies the frames committed so far
//     without taking the write lock, so commits go on meanwhile;
//   - it passes again while the writer appended much during its pass; after that, the
//     writer's next commit runs a PASSIVE checkpoint itself, which copies only the little
//     committed during the last pass. Being the writer, nothing is appended while it
//     runs, so the WAL is then wholly copied and SQLite starts it over at the next transaction
//     (unless a reader still uses an older snapshot: then it is copied again a cycle later);
//   - SQLite starts a wholly copied WAL over only when no reader still uses an older snapshot;
//     a WAL that reaches kMaxWalPages all the same (readers, or a writer faster than the
//     thread) makes the writer wait for the thread's pass and run a RESTART checkpoint, which
//     waits for those readers (reads are short), so the WAL's length stays bounded.
// Durability does not change: a commit is in the WAL before it returns, and a checkpoint syncs
// the WAL before it copies frames and the database file after, whichever connection runs it.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

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
  // kMaxPasses times), since the writer appended about as much meanwhile; then the writer
  // copies the rest, small, inline.
  static constexpr int kInlinePages = 1'024;
  static constexpr int kMaxPasses = 8;
  // A WAL this long (the thread cannot keep up, or a reader held an older snapshot at each
  // restart): the committing writer waits for the thread's pass and runs a RESTART checkpoint,
  // which copies the rest and waits for such readers.
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

  // Checkpoints run so far by the thread and by the writer (inline), for tests. Any thread.
  std::uint64_t background_checkpoints() const;
  std::uint64_t inline_checkpoints() const;

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void committed(int wal_pages);     // the writer's thread, after each of its commits
  void checkpoint_inline(int mode);  // the writer's thread; SQLITE_CHECKPOINT_*
  void run();

  SQLite::Database& writer_;
  std::unique_ptr<SQLite::Database> connection_;  // the thread's own

  // The writer's thread only (the hook):
  int copied_through_ = 0;         // the WAL's length when the last checkpoint cycle began
  int restart_at_ = kMaxWalPages;  // the WAL's length at which the writer next restarts it

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // the thread waits for a request
  std::condition_variable idle_;  // the writer waits for the end of a pass
  bool requested_ = false;        // a pass is asked of the thread; guarded by mutex_
  bool running_ = false;          // the thread is in a pass; guarded by mutex_
  bool pass_finished_ = false;    // a pass ended; the writer copies the rest; guarded by mutex_
  bool writer_waiting_ = false;   // the writer waits for the pass to end; guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
  std::uint64_t background_ = 0;  // guarded by mutex_
  std::uint64_t inline_ = 0;      // guarded by mutex_
  std::thread thread_;
};

}  // namespace vigil::sqlite
