// The Prometheus text exposition format (0.0.4), written straight from compact state. A
// prometheus::ClientMetric costs a vector of label strings per series (about 1.1 KB per HTTP
// service): building them for every per-service series made a scrape of 100,000 services take
// seconds and most of a gigabyte. The per-service collectors write their lines here instead, in
// pieces handed to a sink (the HTTP response), with the same text prometheus-cpp's
// TextSerializer writes for the same families.
#pragma once

#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>

namespace vigil {

struct TextLabel {
  std::string_view name;
  std::string_view value;  // escaped when written
};

// A family's name, HELP and TYPE.
struct TextFamily {
  std::string_view name;
  std::string_view help;
  prometheus::MetricType type;
};

class TextExpositionWriter {
 public:
  // Receives the text in order, in pieces of about `piece_bytes`; false: the reader is gone, and
  // the rest is dropped.
  using Sink = std::function<bool(std::string_view)>;
  explicit TextExpositionWriter(Sink sink, std::size_t piece_bytes = 64 * 1024);

  // Makes `family` the one samples go to. Its HELP and TYPE lines are written before its first
  // sample, and never twice: samples of one name from several sources make one family, as long
  // as the caller keeps them together. A family without samples writes nothing.
  void open(const TextFamily& family);
  // One sample of the open family; `labels` in name order (as prometheus-cpp orders them).
  void sample(std::span<const TextLabel> labels, double value);
  void sample(std::initializer_list<TextLabel> labels, double value) {
    sample(std::span<const TextLabel>(labels.begin(), labels.size()), value);
  }
  // A family that only exists as prometheus-cpp objects (the registry's), written by its
  // TextSerializer; it becomes the open family, so streamed samples of its name may follow.
  void family(const prometheus::MetricFamily& family);

  // False once the sink refused a piece: writers may stop early.
  bool ok() const { return ok_; }
  // Hands the last piece to the sink. Call once, at the end.
  void finish();

 private:
  void flush_if_full();
  void flush();

  Sink sink_;
  const std::size_t piece_bytes_;
  std::string buffer_;
  bool ok_ = true;
  std::string open_name_;
  std::optional<TextFamily> unwritten_;      // the open family, while its HELP and TYPE are not out
  std::unordered_set<std::string> written_;  // names whose HELP and TYPE are out
};

// A number as prometheus-cpp 1.0 writes a sample value: 16 significant digits in the shortest of
// fixed and exponent notation ("%.16g"), and Nan, +Inf, -Inf.
void append_sample_value(std::string& out, double value);

// A source of families that can be written as text without prometheus-cpp objects.
class TextCollectable {
 public:
  virtual ~TextCollectable() = default;
  // Every family this may write, in the order to write them; the same for the source's life.
  virtual std::span<const TextFamily> text_families() const = 0;
  // Writes the samples of text_families()[index] into the open family of `out` (the caller opens
  // it). Safe from any thread.
  virtual void write_samples(std::size_t index, TextExpositionWriter& out) const = 0;
};

}  // namespace vigil
