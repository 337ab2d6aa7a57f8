// WriteQueue: the writer's queue of tick records, oldest first, bounded in length. When it must
// shed a record it sheds the one whose loss matters least: the oldest plain tick (its service's
// metric is cumulative, so a later record's metric still counts it). A record that changes an
// event is never dropped while a plain one is queued; when only such records are left, the
// oldest one with a later record of its service is folded into that record (its tick is
// dropped, its event start carried as folded_events), so every status change still reaches the
// events table with its own start time. Every operation is O(1) (amortised: hashing, and a
// fold copies the few events the dropped record carried).
//
// Not thread-safe: the Writer guards it with its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

#include "core/model.h"

namespace vigil {

class WriteQueue {
 public:
  // What push() had to give up to stay within its bound.
  enum class Shed {
    none,
    plain_tick,  // a plain tick was dropped (the oldest)
    folded,      // a status change's tick was dropped, its event folded into a later record
    transition,  // a status change was dropped with its event: every queued record changes an
                 // event and none has a later record of its service (the bound is below the
                 // number of services)
  };

  // `max_size`: records held at most (at least 1).
  explicit WriteQueue(std::size_t max_size);

  // Appends `record`, numbered `seq` (the caller's submission count; increasing), then sheds one
  // record if the queue holds more than max_size.
  Shed push(TickRecord record, std::uint64_t seq);
  // Removes and returns the oldest record. The queue must not be empty.
  TickRecord pop_front();
  // The seq of the oldest record; empty when the queue is.
  std::optional<std::uint64_t> front_seq() const;
  std::size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  void clear();

 private:
  struct Node;
  using NodeIt = std::list<Node>::iterator;
  using RefIt = std::list<NodeIt>::iterator;
  struct Node {
    TickRecord record;
    std::uint64_t seq = 0;
    // The same service's neighbours in the queue; records_.end() when none.
    NodeIt prev_same;
    NodeIt next_same;
    // Its place in plain_ or in foldable_, when it is in one; end() otherwise.
    RefIt in_plain;
    RefIt in_foldable;
  };

  // Takes `it` out of every index (not out of records_).
  void unlink(NodeIt it);
  // Puts `it` in foldable_ when it changes an event and has a later record of its service.
  void update_foldable(NodeIt it);

  std::size_t max_size_;
  std::list<Node> records_;                                  // oldest first
  std::list<NodeIt> plain_;                                  // the plain records, oldest first
  std::list<NodeIt> foldable_;                               // event records with a successor
  std::unordered_map<ServiceId, NodeIt> newest_of_service_;  // each queued service's last record
};

}  // namespace vigil
