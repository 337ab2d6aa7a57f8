#include "storage/write_queue.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace vigil {

WriteQueue::WriteQueue(std::size_t max_size) : max_size_(std::max<std::size_t>(max_size, 1)) {}

WriteQueue::Shed WriteQueue::push(TickRecord record, std::uint64_t seq) {
  const ServiceId id = record.tick.service_id;
  const NodeIt it = records_.insert(
      records_.end(),
      Node{std::move(record), seq, records_.end(), records_.end(), plain_.end(), foldable_.end()});
  auto [newest, added] = newest_of_service_.try_emplace(id, it);
  if (!added) {
    const NodeIt prev = newest->second;
    prev->next_same = it;
    it->prev_same = prev;
    newest->second = it;
    update_foldable(prev);
  }
  if (it->record.plain()) it->in_plain = plain_.insert(plain_.end(), it);
  if (records_.size() <= max_size_) return Shed::none;

  if (!plain_.empty()) {
    const NodeIt victim = plain_.front();
    unlink(victim);
    records_.erase(victim);
    return Shed::plain_tick;
  }
  if (!foldable_.empty()) {
    const NodeIt victim = foldable_.front();
    const NodeIt next = victim->next_same;
    // The victim's events go before the next record's own: they happened first.
    auto& from = victim->record;
    std::vector<EventStart> events = std::move(from.folded_events);
    if (from.opens_event) events.push_back({*from.opens_event, from.tick.ts});
    auto& into = next->record.folded_events;
    events.insert(events.end(), std::make_move_iterator(into.begin()),
                  std::make_move_iterator(into.end()));
    into = std::move(events);
    unlink(victim);
    records_.erase(victim);
    // `next` now changes an event, if it did not already.
    if (next->in_plain != plain_.end()) {
      plain_.erase(next->in_plain);
      next->in_plain = plain_.end();
    }
    update_foldable(next);
    return Shed::folded;
  }
  const NodeIt victim = records_.begin();
  unlink(victim);
  records_.erase(victim);
  return Shed::transition;
}

TickRecord WriteQueue::pop_front() {
  const NodeIt front = records_.begin();
  unlink(front);
  TickRecord record = std::move(front->record);
  records_.erase(front);
  return record;
}

std::optional<std::uint64_t> WriteQueue::front_seq() const {
  if (records_.empty()) return std::nullopt;
  return records_.front().seq;
}

void WriteQueue::clear() {
  plain_.clear();
  foldable_.clear();
  newest_of_service_.clear();
  records_.clear();
}

void WriteQueue::unlink(NodeIt it) {
  if (it->in_plain != plain_.end()) plain_.erase(it->in_plain);
  if (it->in_foldable != foldable_.end()) foldable_.erase(it->in_foldable);
  it->in_plain = plain_.end();
  it->in_foldable = foldable_.end();
  const NodeIt prev = it->prev_same;
  const NodeIt next = it->next_same;
  if (next != records_.end()) {
    next->prev_same = prev;
  } else if (prev != records_.end()) {
    newest_of_service_[it->record.tick.service_id] = prev;
  } else {
    newest_of_service_.erase(it->record.tick.service_id);
  }
  if (prev != records_.end()) {
    prev->next_same = next;
    if (next == records_.end() && prev->in_foldable != foldable_.end()) {
      foldable_.erase(prev->in_foldable);  // its successor is gone: nothing to fold into
      prev->in_foldable = foldable_.end();
    }
  }
  it->prev_same = it->next_same = records_.end();
}

void WriteQueue::update_foldable(NodeIt it) {
  if (it->in_foldable != foldable_.end() || it->record.plain()) return;
  if (it->next_same == records_.end()) return;
  it->in_foldable = foldable_.insert(foldable_.end(), it);
}

}  // namespace vigil
