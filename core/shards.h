// How the services are divided between the runners of one region in a cluster (several vigil
// processes on one PostgreSQL database): each service falls into one of a fixed number of
// shards, and each shard has one owner among the live runners of the region, chosen by
// rendezvous (highest random weight) hashing. Every member computes the same answer from the same
// list of live members, and a member joining or leaving moves only the shards it gains or loses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model.h"

namespace vigil {

// Shards per region. Fixed: every member of a cluster must agree on it (it is part of the
// database's meaning, like the schema), and 64 divides a region's services evenly enough among
// the few runners a region has.
inline constexpr int kShardCount = 64;

// The shard of a service: its id modulo kShardCount (ids are dense, so shards are even). The SQL
// side computes the same as `service_id % 64`.
int shard_of(ServiceId id);

// The owner of `shard` among `members` (names of the region's live runners; order does not
// matter): the member with the highest rendezvous weight. Empty `members`: empty string.
std::string shard_owner(int shard, const std::vector<std::string>& members);

// The shards `member` owns among `members` (which must include it to own any), ascending.
std::vector<int> shards_of_member(const std::string& member,
                                  const std::vector<std::string>& members);

}  // namespace vigil
