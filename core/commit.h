// CommitPromise and CommitFuture: what became of one record handed over to be stored, told to the
// one thread that waits for it. A pushed heartbeat report is answered 200 only once the tick it
// became is committed, so the push is the record's waiter and the storage writer its keeper.
//
// make_commit_pair() gives both halves. The promise travels with the record (copies share it);
// whoever holds a copy resolves it: committed() once the transaction carrying the record has
// committed, ignored() when the record was refused for what it is. The first resolution wins.
// When the last copy goes away unresolved (the record was dropped: a full queue shed it, the
// writer stopped, a command was never applied), the outcome is `dropped`, so the waiter never
// waits for a record that no longer exists.
//
// Thread-safety: a promise's copies may be resolved and destroyed on any threads; one thread
// waits on the future.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace vigil {

enum class CommitOutcome {
  committed,  // the transaction that carries the record has committed
  dropped,    // the record was discarded before it was committed: it is not stored
  ignored,    // the record was refused for what it is (a beat for a service that is gone)
  timed_out,  // wait_for only: no outcome within the bound; the record may still be committed
};

namespace commit_detail {
struct Shared;
struct Keeper;
}  // namespace commit_detail

class CommitFuture;

class CommitPromise {
 public:
  // An empty promise: nobody waits, every call is a no-op.
  CommitPromise() = default;

  // Whether someone waits on this record (the writer commits such a record without waiting out
  // its flush interval).
  bool awaited() const { return keeper_ != nullptr; }
  void committed() const;
  void ignored() const;

 private:
  friend std::pair<CommitPromise, CommitFuture> make_commit_pair();
  explicit CommitPromise(std::shared_ptr<commit_detail::Keeper> keeper)
      : keeper_(std::move(keeper)) {}
  std::shared_ptr<commit_detail::Keeper> keeper_;
};

class CommitFuture {
 public:
  // Blocks until the promise is resolved or its last copy is gone, for at most `timeout`.
  // Returns the outcome; timed_out when neither happened in time.
  CommitOutcome wait_for(std::chrono::milliseconds timeout) const;

 private:
  friend std::pair<CommitPromise, CommitFuture> make_commit_pair();
  explicit CommitFuture(std::shared_ptr<commit_detail::Shared> shared)
      : shared_(std::move(shared)) {}
  std::shared_ptr<commit_detail::Shared> shared_;
};

// A promise and the future it resolves.
std::pair<CommitPromise, CommitFuture> make_commit_pair();

}  // namespace vigil
