// HTTPS probes against a real local TLS server whose self-signed certificate the test
// makes with openssl: verification on and off, a private CA file, client certificates, the TLS
// phase, certificate dates and the certificate condition, and the TLS metrics through the
// runner (checked by promtool).
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/conditions.h"
#include "runner/probe.h"
#include "runner/runner.h"
#include "support/phase_sum.h"
#include "support/process.h"
#include "support/runner_metrics.h"
#include "support/target_server.h"
#include "support/tls_target.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class TlsProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    cert_ = new test::CertificateFiles(test::make_self_signed_certificate(*dir_, 2));
    server_ = new test::TlsTargetServer(*cert_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete cert_;
    delete dir_;
  }

  static ServiceSpec spec(const std::string& path) {
    ServiceSpec s;
    s.name = "tls-test";
    s.url = server_->url(path);
    s.timeout = 3000ms;
    return s;
  }
  static ProbeResult run(const ServiceSpec& s) {
    auto probe = make_probe(s, ProbeSettings{});
    return run_probe_now(*probe, s.timeout);
  }

  static inline test::TempDir* dir_ = nullptr;
  static inline test::CertificateFiles* cert_ = nullptr;
  static inline test::TlsTargetServer* server_ = nullptr;
};

TEST_F(TlsProbeTest, UntrustedCertificateIsDownWithATlsReason) {
  const ProbeResult r = run(spec("/ok"));
  EXPECT_FALSE(r.up);
  EXPECT_TRUE(r.error.starts_with("TLS: ")) << r.error;
  EXPECT_NE(r.error.find("certificate"), std::string::npos) << r.error;
  EXPECT_FALSE(r.status_code);
}

TEST_F(TlsProbeTest, InsecureSkipVerifyAcceptsIt) {
  ServiceSpec s = spec("/ok");
  s.probe.insecure_skip_verify = true;
  const ProbeResult r = run(s);
  EXPECT_TRUE(r.up) << r.error;
  EXPECT_EQ(r.status_code, 200);
}

TEST_F(TlsProbeTest, CaFileTrustsThePrivateCertificate) {
  ServiceSpec s = spec("/ok");
  s.probe.ca_file = cert_->cert;
  const ProbeResult r = run(s);
  EXPECT_TRUE(r.up) << r.error;

  // A CA file that is not the issuer does not help.
  test::TempDir other_dir;
  const auto other = test::make_self_signed_certificate(other_dir, 2, "other");
  s.probe.ca_file = other.cert;
  EXPECT_FALSE(run(s).up);
}

TEST_F(TlsProbeTest, TlsPhaseVersionAndCertificateAreReported) {
  ServiceSpec s = spec("/ok");
  s.probe.insecure_skip_verify = true;
  const ProbeResult r = run(s);
  ASSERT_TRUE(r.up) << r.error;
  ASSERT_TRUE(r.phases);
  EXPECT_GT(r.phases->tls_ms, 0);  // an RSA handshake takes real time
  EXPECT_NEAR(test::phase_sum(*r.phases), r.response_ms, 0.001);
  EXPECT_TRUE(r.details.tls);
  EXPECT_TRUE(r.details.tls_version.starts_with("TLSv1.")) << r.details.tls_version;
  ASSERT_EQ(r.details.certificates.size(), 1u);  // self-signed: the chain is the leaf
  const auto& leaf = r.details.certificates[0];
  EXPECT_NE(leaf.subject.find("localhost"), std::string::npos) << leaf.subject;
  EXPECT_EQ(leaf.subject, leaf.issuer);
  ASSERT_TRUE(leaf.not_after);
  const auto left = *leaf.not_after - now_ms();
  EXPECT_GT(left, std::chrono::hours(47));  // -days 2 from a moment ago
  EXPECT_LE(left, std::chrono::hours(48));
  EXPECT_EQ(r.details.earliest_cert_expiry(), leaf.not_after);
}

TEST_F(TlsProbeTest, CertificateExpiryCondition) {
  ServiceSpec s = spec("/ok");
  s.probe.insecure_skip_verify = true;
  s.probe.conditions = parse_conditions(json{{"cert_expires_in_days_min", 1}}, "test");
  const ProbeResult ok = run(s);
  EXPECT_TRUE(ok.up) << ok.error;

  s.probe.conditions = parse_conditions(json{{"cert_expires_in_days_min", 14}}, "test");
  const ProbeResult soon = run(s);
  EXPECT_FALSE(soon.up);
  EXPECT_TRUE(soon.error.starts_with("condition failed: certificate expires in 2.0 days") ||
              soon.error.starts_with("condition failed: certificate expires in 1.9 days"))
      << soon.error;
  EXPECT_TRUE(soon.error.ends_with(", less than 14")) << soon.error;
}

TEST_F(TlsProbeTest, ClientCertificateIsPresentedWhenConfigured) {
  test::TempDir client_dir;
  const auto client = test::make_self_signed_certificate(client_dir, 2, "client", "probe-client");
  test::TlsTargetServer mutual(*cert_, client.cert);
  ServiceSpec s;
  s.name = "mtls";
  s.url = mutual.url("/ok");
  s.timeout = 3000ms;
  s.probe.ca_file = cert_->cert;
  const ProbeResult without = run(s);
  EXPECT_FALSE(without.up);

  s.probe.client_cert = client.cert;
  s.probe.client_key = client.key;
  const ProbeResult with = run(s);
  EXPECT_TRUE(with.up) << with.error;
}

TEST_F(TlsProbeTest, RunnerExportsTlsAndPhaseMetricsThatPassPromtool) {
  prometheus::Registry registry;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<ServiceId, int> ticks;
  Runner runner(
      {},
      [&](const TickRecord& record) {
        std::lock_guard lock(mutex);
        ++ticks[record.tick.service_id];
        changed.notify_all();
      },
      registry);
  Service https;
  https.id = 1;
  https.spec = spec("/ok");
  https.spec.name = "secure";
  https.spec.interval = 1000ms;
  https.spec.timeout = 1000ms;
  https.spec.probe.insecure_skip_verify = true;
  test::TargetServer plain_target;
  Service plain;
  plain.id = 2;
  plain.spec.name = "plain";
  plain.spec.url = plain_target.url("/redirect/2");
  plain.spec.interval = 200ms;
  plain.spec.timeout = 200ms;
  runner.start({https, plain}, {});
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, 5s, [&] { return ticks[1] >= 1 && ticks[2] >= 1; }));
  }
  runner.stop();

  const auto families = test::collect(registry, runner);
  const auto value = [&](const std::string& name,
                         const std::map<std::string, std::string>& labels) -> double {
    for (const auto& family : families) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        std::map<std::string, std::string> have;
        for (const auto& label : metric.label) have[label.name] = label.value;
        if (have == labels) return metric.gauge.value;
      }
    }
    return -1;
  };
  const double expiry = value("probe_ssl_earliest_cert_expiry", {{"service", "secure"}});
  const double now_s = double(to_unix_seconds(now_ms()));
  EXPECT_GT(expiry, now_s + 47 * 3600);
  EXPECT_LE(expiry, now_s + 48 * 3600 + 1);
  EXPECT_EQ(value("probe_http_ssl", {{"service", "secure"}}), 1);
  EXPECT_EQ(value("probe_http_ssl", {{"service", "plain"}}), 0);
  EXPECT_EQ(value("probe_ssl_earliest_cert_expiry", {{"service", "plain"}}), -1);  // no series
  EXPECT_GT(value("probe_http_duration_seconds", {{"service", "secure"}, {"phase", "tls"}}), 0);
  EXPECT_EQ(value("probe_http_duration_seconds", {{"service", "plain"}, {"phase", "tls"}}), 0);
  EXPECT_EQ(value("probe_http_redirects", {{"service", "plain"}}), 2);
  EXPECT_EQ(value("probe_http_content_length", {{"service", "secure"}}), 2);

  double tls_version_series = 0;
  for (const auto& family : families)
    if (family.name == "probe_tls_version_info")
      for (const auto& metric : family.metric) {
        tls_version_series += 1;
        EXPECT_EQ(metric.gauge.value, 1);
      }
  EXPECT_EQ(tls_version_series, 1);  // the HTTPS service only

  // The phases of the last probe add up to its duration.
  double sum = 0;
  for (const char* phase : {"resolve", "connect", "tls", "processing", "transfer"})
    sum += value("probe_http_duration_seconds", {{"service", "secure"}, {"phase", phase}});
  EXPECT_NEAR(sum, value("probe_duration_seconds", {{"service", "secure"}}), 1e-6);

  const std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_NE(text.find("vigil_probe_http_phase_duration_seconds_bucket{phase=\"tls\""),
            std::string::npos);
  test::TempDir tmp;
  std::ofstream(tmp.file("metrics.txt")) << text;
  const auto check =
      test::run_command("/usr/bin/promtool check metrics < " + tmp.file("metrics.txt"));
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;
}

}  // namespace
}  // namespace vigil
