// The per-service series written straight as text (runner/text_exposition.h) against the same
// series as prometheus-cpp objects serialised by its TextSerializer: the same families, HELP and
// TYPE lines, labels, escaping and values, for services with awkward names.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "runner/service_series.h"
#include "runner/text_exposition.h"
#include "support/prometheus_text.h"
#include "support/target_server.h"

namespace vigil {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Every family of `source` through a writer handing out pieces of `piece_bytes`.
std::string streamed_text(const TextCollectable& source, std::size_t piece_bytes,
                          std::size_t* pieces = nullptr) {
  std::string text;
  std::size_t count = 0;
  TextExpositionWriter out(
      [&](std::string_view piece) {
        text += piece;
        ++count;
        return true;
      },
      piece_bytes);
  const auto families = source.text_families();
  for (std::size_t i = 0; i < families.size(); ++i) {
    out.open(families[i]);
    source.write_samples(i, out);
  }
  out.finish();
  if (pieces) *pieces = count;
  return text;
}

class TextExpositionTest : public ::testing::Test {
 protected:
  // Services with names that need escaping or are not ASCII, in every combination of groups,
  // with values that exercise the number format.
  void SetUp() override {
    const std::vector<std::string> names = {"plain",
                                            "say \"hi\"",
                                            "back\\slash\\",
                                            "two\nlines\n",
                                            "unicode é ✓ 日本語 🚀",
                                            "mixed \\\"\n end",
                                            "{brace=\"x\",comma}",
                                            ""};
    const double values[] = {0,
                             -0.0,
                             1,
                             0.42,
                             1e-7,
                             1.5e300,
                             3.0 / 7,
                             kInf,
                             -kInf,
                             std::nan(""),
                             -1,
                             1700000000.123,
                             123456789012345678.0};
    std::size_t v = 0;
    const auto next = [&] { return values[v++ % std::size(values)]; };
    for (std::size_t i = 0; i < names.size(); ++i) {
      auto s = collector_.add(names[i]);
      s->show(ServiceSeries::kProbe);
      if (i % 2 == 0) s->show(ServiceSeries::kState);
      if (i % 3 == 0) s->show(ServiceSeries::kBeat);
      if (i % 2 == 1) s->show(ServiceSeries::kHttp);
      if (i % 4 == 1) s->show(ServiceSeries::kCertExpiry);
      if (i % 4 == 3) s->set_tls_version(i == 3 ? "TLSv1.3" : "TLS \"odd\"\\\n");
      for (auto* value :
           {&s->success, &s->duration_s, &s->status_code, &s->up, &s->uptime_ratio, &s->last_beat_s,
            &s->ssl, &s->redirects, &s->content_length, &s->cert_expiry_s})
        value->set(next());
      for (auto& phase : s->phase_s) phase.set(next());
      s->probes_up = 3 * i;
      s->probes_down = (std::uint64_t(1) << 53) + i;
      series_.push_back(std::move(s));
    }
  }

  ServiceSeriesCollector collector_;
  std::vector<std::shared_ptr<ServiceSeries>> series_;
  test::TempDir dir_;
};

TEST_F(TextExpositionTest, StreamedTextEqualsTheSerializedFamiliesSeriesBySeries) {
  const std::string expected = prometheus::TextSerializer().Serialize(collector_.Collect());
  std::size_t pieces = 0;
  const std::string streamed = streamed_text(collector_, 256, &pieces);
  EXPECT_GT(pieces, 4u);  // small pieces: the text crossed many flushes

  const auto old_parsed = test::parse_exposition(expected);
  const auto new_parsed = test::parse_exposition(streamed);
  EXPECT_TRUE(old_parsed.errors.empty()) << old_parsed.errors.front();
  EXPECT_TRUE(new_parsed.errors.empty()) << new_parsed.errors.front();
  // Every family the table has, with every group shown by some service.
  EXPECT_EQ(new_parsed.families.size(), collector_.text_families().size());
  EXPECT_GT(new_parsed.sample_count, 8u * 10u);
  EXPECT_EQ(new_parsed.sample_count, old_parsed.sample_count);
  for (const auto& [name, family] : old_parsed.families) {
    const auto it = new_parsed.families.find(name);
    ASSERT_NE(it, new_parsed.families.end()) << name;
    EXPECT_EQ(it->second.help, family.help) << name;
    EXPECT_EQ(it->second.type, family.type) << name;
    for (const auto& [key, bits] : family.series) {
      const auto found = it->second.series.find(key);
      ASSERT_NE(found, it->second.series.end()) << name << " lost " << key.first;
      EXPECT_EQ(found->second, bits) << name << " " << key.first;
    }
    EXPECT_EQ(it->second.series.size(), family.series.size()) << name;
  }
  // The names came back unescaped as they were given.
  const auto& up = new_parsed.families.at("probe_success").series;
  for (const auto& s : series_)
    EXPECT_TRUE(up.contains({"probe_success", {{"service", s->name()}}})) << s->name();
  // Same order and formatting too: the text is byte for byte what prometheus-cpp wrote.
  EXPECT_EQ(streamed, expected);

  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  const auto complaints = test::promtool_complaints(streamed, dir_.path());
  EXPECT_FALSE(complaints) << *complaints << "\n--- input ---\n" << streamed;
}

TEST_F(TextExpositionTest, ValuesAreFormattedAsPrometheusCppFormatsThem) {
  const double values[] = {
      0,         -0.0,  0.1,  0.3 + 1e-16,  2.5e-324, 1e21,   1e16,     9.999999999999999e15,
      12345.678, -kInf, kInf, std::nan(""), 1e-5,     123456, 0.1 + 0.2};
  for (const double value : values) {
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    const std::string serialized = prometheus::TextSerializer().Serialize(
        {{"x", "", prometheus::MetricType::Gauge, {metric}}});
    std::string mine = "# TYPE x gauge\nx ";
    append_sample_value(mine, value);
    EXPECT_EQ(mine + "\n", serialized) << value;
  }
}

TEST_F(TextExpositionTest, EmptyFamiliesAndRepeatedNamesWriteOneHeaderOrNone) {
  std::string text;
  TextExpositionWriter out([&](std::string_view piece) {
    text += piece;
    return true;
  });
  const TextFamily empty{"vigil_empty", "Never sampled.", prometheus::MetricType::Gauge};
  const TextFamily shared{"vigil_shared", "Sampled by two sources.",
                          prometheus::MetricType::Counter};
  out.open(empty);
  out.open(shared);
  out.sample({{"service", "a"}}, 1);
  out.open(shared);  // a second source of the same family, right after the first
  out.sample({{"service", "b"}, {"window", "1h"}}, 2);
  out.finish();
  EXPECT_EQ(text,
            "# HELP vigil_shared Sampled by two sources.\n"
            "# TYPE vigil_shared counter\n"
            "vigil_shared{service=\"a\"} 1\n"
            "vigil_shared{service=\"b\",window=\"1h\"} 2\n");
}

TEST_F(TextExpositionTest, StopsWritingOnceTheReaderIsGone) {
  std::size_t calls = 0;
  TextExpositionWriter out(
      [&](std::string_view) {
        ++calls;
        return false;
      },
      64);
  const auto families = collector_.text_families();
  for (std::size_t i = 0; i < families.size(); ++i) {
    out.open(families[i]);
    collector_.write_samples(i, out);
  }
  out.finish();
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(calls, 1u);
}

}  // namespace
}  // namespace vigil
