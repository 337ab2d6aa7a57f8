#include "core/shards.h"

#include <string_view>

namespace vigil {

namespace {

// FNV-1a: stable across builds and platforms, unlike std::hash, so that members built apart
// still agree.
std::uint64_t name_hash(std::string_view name) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const unsigned char c : name) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// splitmix64's finaliser: spreads the combined key so that weights of neighbouring shards are
// unrelated.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t weight(int shard, std::uint64_t member_hash) {
  return mix(member_hash ^ mix(static_cast<std::uint64_t>(shard)));
}

}  // namespace

int shard_of(ServiceId id) {
  const auto shard = static_cast<int>(id % kShardCount);
  return shard < 0 ? shard + kShardCount : shard;
}

std::string shard_owner(int shard, const std::vector<std::string>& members) {
  const std::string* best = nullptr;
  std::uint64_t best_weight = 0;
  for (const auto& member : members) {
    const std::uint64_t w = weight(shard, name_hash(member));
    // Ties (practically never) go to the smaller name, so every member agrees.
    if (!best || w > best_weight || (w == best_weight && member < *best)) {
      best = &member;
      best_weight = w;
    }
  }
  return best ? *best : std::string();
}

std::vector<int> shards_of_member(const std::string& member,
                                  const std::vector<std::string>& members) {
  std::vector<int> owned;
  for (int shard = 0; shard < kShardCount; ++shard)
    if (shard_owner(shard, members) == member) owned.push_back(shard);
  return owned;
}

}  // namespace vigil
