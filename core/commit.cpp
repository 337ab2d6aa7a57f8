#include "core/commit.h"

namespace vigil {
namespace commit_detail {

struct Shared {
  std::mutex mutex;
  std::condition_variable resolved;
  std::optional<CommitOutcome> outcome;  // guarded by mutex

  void resolve(CommitOutcome value) {
    {
      std::lock_guard lock(mutex);
      if (outcome) return;
      outcome = value;
    }
    resolved.notify_all();
  }
};

// Owned by the promise's copies: the last one gone resolves what is still unresolved.
struct Keeper {
  explicit Keeper(std::shared_ptr<Shared> to_resolve) : shared(std::move(to_resolve)) {}
  ~Keeper() { shared->resolve(CommitOutcome::dropped); }
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;
  std::shared_ptr<Shared> shared;
};

}  // namespace commit_detail

void CommitPromise::committed() const {
  if (keeper_) keeper_->shared->resolve(CommitOutcome::committed);
}

void CommitPromise::ignored() const {
  if (keeper_) keeper_->shared->resolve(CommitOutcome::ignored);
}

CommitOutcome CommitFuture::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(shared_->mutex);
  if (!shared_->resolved.wait_for(lock, timeout, [&] { return shared_->outcome.has_value(); }))
    return CommitOutcome::timed_out;
  return *shared_->outcome;
}

std::pair<CommitPromise, CommitFuture> make_commit_pair() {
  auto shared = std::make_shared<commit_detail::Shared>();
  auto keeper = std::make_shared<commit_detail::Keeper>(shared);
  return {CommitPromise(std::move(keeper)), CommitFuture(std::move(shared))};
}

}  // namespace vigil
