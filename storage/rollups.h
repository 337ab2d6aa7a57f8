// Time-series summaries: a mergeable latency histogram and the per-period summary a backend keeps
// for each minute, hour and day. Plain values: any thread, no I/O.
//
// Percentile error: buckets are log-spaced kRatio = 1.2 apart from 0.1 ms to ~125 s, and a
// percentile reports its bucket's geometric middle clamped to the period's [min, max], so for any
// response time in that range the reported value is within sqrt(1.2) - 1 < 9.6% of the exact
// nearest-rank percentile. Below 0.1 ms the error is under 0.1 ms; above ~125 s it is the max.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "core/model.h"

namespace vigil {

// The periods rollup rows summarise: a UTC minute, hour or day.
enum class RollupResolution { minute, hour, day };

class LatencyHistogram {
 public:
  static constexpr double kRatio = 1.2;
  static constexpr double kLowestMs = 0.1;
  // Bucket 0: below kLowestMs; 1..kFiniteBuckets: [0.1 * 1.2^(i-1), 0.1 * 1.2^i) ms; the last
  // one: everything above (~125 s).
  static constexpr int kFiniteBuckets = 77;
  static constexpr int kBuckets = kFiniteBuckets + 2;

  void add(double ms, std::uint64_t times = 1);
  void merge(const LatencyHistogram& other);
  std::uint64_t total() const { return total_; }
  // The nearest-rank q-quantile (0 < q <= 1) as a bucket's representative value, clamped to
  // [lo, hi] (the known min and max); empty when there are no values.
  std::optional<double> percentile(double q, double lo, double hi) const;

  // Compact blob: (bucket index byte, LEB128 count) per non-empty bucket, ascending.
  std::string encode() const;
  // Throws std::invalid_argument on a malformed blob.
  static LatencyHistogram decode(const void* data, std::size_t size);
  // merge(decode(data, size)) without the intermediate histogram; on a malformed blob it throws
  // std::invalid_argument and leaves this unchanged.
  void merge_encoded(const void* data, std::size_t size);

  static int bucket_of(double ms);
  friend bool operator==(const LatencyHistogram&, const LatencyHistogram&) = default;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
};

// What the probes of one service said over a period: one rollup row, or the merge of several
// rows and raw ticks.
struct RollupSummary {
  std::int64_t count = 0;
  std::int64_t up = 0;
  std::int64_t down = 0;
  double sum_ms = 0;
  double min_ms = 0;  // meaningful when count > 0
  double max_ms = 0;
  LatencyHistogram histogram;
  std::int64_t phase_count = 0;  // ticks with phase timings; phase_sums adds theirs up
  PhaseTimings phase_sums;

  void add(const Tick& tick);
  void merge(const RollupSummary& other);
  // merge() of everything but the histogram.
  void merge_scalars(const RollupSummary& other);
  std::optional<double> mean_ms() const;
  std::optional<double> percentile(double q) const {
    return histogram.percentile(q, min_ms, max_ms);
  }
  std::optional<double> uptime_percent() const;
  std::optional<PhaseTimings> phase_means() const;
};

// The part of a summary uptime needs: how many ticks, and how many of them up. What the views
// of many services that show no latency read (vigil_service_uptime_ratio), at 16 bytes a service
// where a RollupSummary takes about 700.
struct UptimeCounts {
  std::int64_t count = 0;
  std::int64_t up = 0;
  void merge(const UptimeCounts& other) {
    count += other.count;
    up += other.up;
  }
};

}  // namespace vigil
