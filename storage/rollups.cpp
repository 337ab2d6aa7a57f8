#include "storage/rollups.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace vigil {

int LatencyHistogram::bucket_of(double ms) {
  if (!(ms >= kLowestMs)) return 0;  // NaN too
  static const double log_ratio = std::log(kRatio);
  const double index = std::floor(std::log(ms / kLowestMs) / log_ratio) + 1;
  return index > kFiniteBuckets ? kBuckets - 1 : static_cast<int>(index);
}

void LatencyHistogram::add(double ms, std::uint64_t times) {
  counts_[static_cast<std::size_t>(bucket_of(ms))] += times;
  total_ += times;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

std::optional<double> LatencyHistogram::percentile(double q, double lo, double hi) const {
  if (total_ == 0) return std::nullopt;
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * double(total_))));
  std::uint64_t seen = 0;
  std::size_t bucket = 0;
  for (; bucket < counts_.size(); ++bucket) {
    seen += counts_[bucket];
    if (seen >= rank) break;
  }
  double value = 0;
  if (bucket == 0)
    value = lo;
  else if (bucket == counts_.size() - 1)
    value = hi;
  else  // the geometric middle of [0.1 * r^(i-1), 0.1 * r^i)
    value = kLowestMs * std::pow(kRatio, double(bucket) - 0.5);
  return std::clamp(value, lo, std::max(lo, hi));
}

std::string LatencyHistogram::encode() const {
  std::string out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    out.push_back(static_cast<char>(i));
    std::uint64_t n = counts_[i];
    do {
      const auto low = static_cast<unsigned char>(n & 0x7f);
      n >>= 7;
      out.push_back(static_cast<char>(n ? low | 0x80 : low));
    } while (n);
  }
  return out;
}

LatencyHistogram LatencyHistogram::decode(const void* data, std::size_t size) {
  LatencyHistogram h;
  h.merge_encoded(data, size);
  return h;
}

void LatencyHistogram::merge_encoded(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  // Twice over the few bytes: checked whole first, so a malformed blob changes nothing.
  const auto walk = [&](auto&& each) {
    std::size_t pos = 0;
    while (pos < size) {
      const std::size_t index = bytes[pos++];
      if (index >= kBuckets) throw std::invalid_argument("histogram: bad bucket index");
      std::uint64_t n = 0;
      for (int shift = 0;; shift += 7) {
        if (pos >= size || shift > 63) throw std::invalid_argument("histogram: truncated count");
        const unsigned char byte = bytes[pos++];
        n |= std::uint64_t(byte & 0x7f) << shift;
        if (!(byte & 0x80)) break;
      }
      each(index, n);
    }
  };
  walk([](std::size_t, std::uint64_t) {});
  walk([this](std::size_t index, std::uint64_t n) {
    counts_[index] += n;
    total_ += n;
  });
}

void RollupSummary::add(const Tick& tick) {
  const double ms = tick.response_ms;
  min_ms = count == 0 ? ms : std::min(min_ms, ms);
  max_ms = count == 0 ? ms : std::max(max_ms, ms);
  ++count;
  (tick.up ? up : down) += 1;
  sum_ms += ms;
  histogram.add(ms);
  if (tick.phases) {
    ++phase_count;
    phase_sums.resolve_ms += tick.phases->resolve_ms;
    phase_sums.connect_ms += tick.phases->connect_ms;
    phase_sums.tls_ms += tick.phases->tls_ms;
    phase_sums.processing_ms += tick.phases->processing_ms;
    phase_sums.transfer_ms += tick.phases->transfer_ms;
  }
}

void RollupSummary::merge(const RollupSummary& other) {
  merge_scalars(other);
  histogram.merge(other.histogram);
}

void RollupSummary::merge_scalars(const RollupSummary& other) {
  if (other.count == 0) return;
  min_ms = count == 0 ? other.min_ms : std::min(min_ms, other.min_ms);
  max_ms = count == 0 ? other.max_ms : std::max(max_ms, other.max_ms);
  count += other.count;
  up += other.up;
  down += other.down;
  sum_ms += other.sum_ms;
  phase_count += other.phase_count;
  phase_sums.resolve_ms += other.phase_sums.resolve_ms;
  phase_sums.connect_ms += other.phase_sums.connect_ms;
  phase_sums.tls_ms += other.phase_sums.tls_ms;
  phase_sums.processing_ms += other.phase_sums.processing_ms;
  phase_sums.transfer_ms += other.phase_sums.transfer_ms;
}

std::optional<double> RollupSummary::mean_ms() const {
  if (count == 0) return std::nullopt;
  return sum_ms / double(count);
}

std::optional<double> RollupSummary::uptime_percent() const {
  if (count == 0) return std::nullopt;
  return 100.0 * double(up) / double(count);
}

std::optional<PhaseTimings> RollupSummary::phase_means() const {
  if (phase_count == 0) return std::nullopt;
  const double n = double(phase_count);
  return PhaseTimings{phase_sums.resolve_ms / n, phase_sums.connect_ms / n, phase_sums.tls_ms / n,
                      phase_sums.processing_ms / n, phase_sums.transfer_ms / n};
}

}  // namespace vigil
