#include "runner/text_exposition.h"

#include <prometheus/text_serializer.h>

#include <charconv>
#include <cmath>
#include <vector>

namespace vigil {

namespace {

const char* type_name(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Summary:
      return "summary";
    case prometheus::MetricType::Histogram:
      return "histogram";
    case prometheus::MetricType::Untyped:
      break;
  }
  return "untyped";
}

// Label values escape backslash, double quote and newline, the only characters the format
// escapes (and the only ones prometheus-cpp does).
void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

void append_sample_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else {
    // prometheus-cpp streams the double with precision max_digits10 - 1 in the default float
    // field, i.e. printf's %.16g; to_chars with the same precision is specified to match it.
    char digits[32];
    const auto end =
        std::to_chars(digits, digits + sizeof digits, value, std::chars_format::general, 16);
    out.append(digits, end.ptr);
  }
}

TextExpositionWriter::TextExpositionWriter(Sink sink, std::size_t piece_bytes)
    : sink_(std::move(sink)), piece_bytes_(piece_bytes) {
  buffer_.reserve(piece_bytes_ + 4096);
}

void TextExpositionWriter::open(const TextFamily& family) {
  open_name_.assign(family.name);
  if (written_.contains(open_name_)) {
    unwritten_.reset();
  } else {
    unwritten_ = family;
  }
}

void TextExpositionWriter::sample(std::span<const TextLabel> labels, double value) {
  if (unwritten_) {
    // As TextSerializer: no HELP line for an empty help.
    if (!unwritten_->help.empty()) {
      buffer_ += "# HELP ";
      buffer_ += open_name_;
      buffer_ += ' ';
      buffer_ += unwritten_->help;
      buffer_ += '\n';
    }
    buffer_ += "# TYPE ";
    buffer_ += open_name_;
    buffer_ += ' ';
    buffer_ += type_name(unwritten_->type);
    buffer_ += '\n';
    written_.insert(open_name_);
    unwritten_.reset();
  }
  buffer_ += open_name_;
  if (!labels.empty()) {
    char separator = '{';
    for (const auto& label : labels) {
      buffer_ += separator;
      buffer_ += label.name;
      buffer_ += "=\"";
      append_label_value(buffer_, label.value);
      buffer_ += '"';
      separator = ',';
    }
    buffer_ += '}';
  }
  buffer_ += ' ';
  append_sample_value(buffer_, value);
  buffer_ += '\n';
  flush_if_full();
}

void TextExpositionWriter::family(const prometheus::MetricFamily& family) {
  buffer_ += prometheus::TextSerializer().Serialize(std::vector{family});
  open_name_ = family.name;
  written_.insert(open_name_);
  unwritten_.reset();
  flush_if_full();
}

void TextExpositionWriter::finish() { flush(); }

void TextExpositionWriter::flush_if_full() {
  if (buffer_.size() >= piece_bytes_) flush();
}

void TextExpositionWriter::flush() {
  if (ok_ && !buffer_.empty()) ok_ = sink_(buffer_);
  buffer_.clear();
}

}  // namespace vigil
