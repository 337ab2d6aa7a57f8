// The HTTP probe against a real local target: each outcome a monitored service can have, with
// the reason a user would read in the event log.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "runner/probe.h"
#include "runner/runner.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class HttpProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { target_ = new test::TargetServer(); }
  static void TearDownTestSuite() {
    delete target_;
    target_ = nullptr;
  }

  static ServiceSpec spec(const std::string& url, Millis timeout = 2000ms) {
    ServiceSpec s;
    s.name = "probe-test";
    s.url = url;
    s.timeout = timeout;
    return s;
  }

  // Runs the probe's own easy handle to completion; the runner drives the same handle through
  // its multi loop instead.
  static ProbeResult run(const ServiceSpec& s, const ProbeSettings& limits = {}) {
    auto probe = make_http_probe(s, limits);
    const auto t0 = Clock::now();
    const CURLcode code = curl_easy_perform(probe->easy());
    last_elapsed_ = Clock::now() - t0;
    return probe->finish(code);
  }

  static inline test::TargetServer* target_ = nullptr;
  static inline Clock::duration last_elapsed_{};
};

TEST_F(HttpProbeTest, OkIsUpWithStatusAndTime) {
  const ProbeResult r = run(spec(target_->url("/ok")));
  EXPECT_TRUE(r.up);
  EXPECT_EQ(r.status_code, 200);
  EXPECT_EQ(r.error, "");
  EXPECT_GT(r.response_ms, 0);
  EXPECT_LT(r.response_ms, 1000);
}

TEST_F(HttpProbeTest, UnexpectedStatusIsDownWithReason) {
  const ProbeResult r = run(spec(target_->url("/status/503")));
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.status_code, 503);
  EXPECT_EQ(r.error, "HTTP status 503 not expected");
}

TEST_F(HttpProbeTest, ExpectedStatusRangesDecideUp) {
  ServiceSpec only_2xx = spec(target_->url("/status/204"));
  only_2xx.expected_status = {StatusRange{200, 299}};
  EXPECT_TRUE(run(only_2xx).up);
  only_2xx.url = target_->url("/status/302");  // no Location: a plain 302 answer
  const ProbeResult redirect = run(only_2xx);
  EXPECT_FALSE(redirect.up);
  EXPECT_EQ(redirect.error, "HTTP status 302 not expected");

  ServiceSpec default_range = spec(target_->url("/status/302"));  // 200-399 by default
  EXPECT_TRUE(run(default_range).up);

  // A maintenance page answering 503 may be exactly what is expected, alongside 200.
  ServiceSpec several = spec(target_->url("/status/503"));
  several.expected_status = {StatusRange{200, 200}, StatusRange{503, 503}};
  EXPECT_TRUE(run(several).up);
  several.url = target_->url("/status/500");
  EXPECT_FALSE(run(several).up);
}

TEST_F(HttpProbeTest, ClosedPortIsConnectionRefused) {
  const ProbeResult r = run(spec("http://127.0.0.1:" + std::to_string(test::closed_port()) + "/"));
  EXPECT_FALSE(r.up);
  EXPECT_FALSE(r.status_code);
  EXPECT_EQ(r.error, "connection refused");
}

TEST_F(HttpProbeTest, UnresolvableHostIsDnsFailureNamingTheHost) {
  const ProbeResult r = run(spec("http://nonexistent.invalid/", 3000ms));
  EXPECT_FALSE(r.up);
  EXPECT_FALSE(r.status_code);
  // Either the resolver says no, or (no resolver reachable) it times out: both name DNS.
  EXPECT_TRUE(r.error.starts_with("DNS resolution failed: nonexistent.invalid")) << r.error;
  EXPECT_LT(last_elapsed_, 3500ms);
}

TEST_F(HttpProbeTest, SlowAnswerBeyondTimeoutIsTimeout) {
  const ProbeResult r = run(spec(target_->url("/slow?ms=1000"), 200ms));
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "timeout after 200 ms");
  EXPECT_GE(r.response_ms, 190);
  EXPECT_LT(r.response_ms, 800);
  EXPECT_LT(last_elapsed_, 800ms);
}

TEST_F(HttpProbeTest, TrickleIsCutAtTheTimeoutEvenThoughBytesKeepComing) {
  const ProbeResult r = run(spec(target_->url("/trickle"), 1500ms));
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "timeout after 1500 ms");
  EXPECT_EQ(r.status_code, 200);  // the headers did arrive
  EXPECT_GE(r.response_ms, 1400);
  EXPECT_LT(last_elapsed_, 2500ms);
}

TEST_F(HttpProbeTest, EndlessBodyIsCutAtTheBodyCap) {
  ProbeSettings limits;
  limits.max_body_bytes = 256 * 1024;
  const ProbeResult r = run(spec(target_->url("/endless"), 5000ms), limits);
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "body larger than 262144 bytes");
  EXPECT_LT(last_elapsed_, 2000ms);  // cut by the cap, not by the timeout
}

TEST_F(HttpProbeTest, BodyWithinTheCapIsUp) {
  ProbeSettings limits;
  limits.max_body_bytes = 2;  // "ok" is exactly 2 bytes
  EXPECT_TRUE(run(spec(target_->url("/ok")), limits).up);
  limits.max_body_bytes = 1;
  EXPECT_EQ(run(spec(target_->url("/ok")), limits).error, "body larger than 1 bytes");
}

TEST_F(HttpProbeTest, RedirectLoopIsTooManyRedirects) {
  ProbeSettings limits;
  limits.max_redirects = 3;
  const ProbeResult r = run(spec(target_->url("/redirect-loop")), limits);
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error, "too many redirects");
  EXPECT_EQ(r.status_code, 302);
}

TEST_F(HttpProbeTest, MaxRedirectsIsHonouredUpToTheFilesMaximum) {
  // The limits the runner (and `vigil run`) probe with by default.
  const ProbeSettings limits = RunnerOptions{}.probe;
  ServiceSpec twenty = spec(target_->url("/redirect/20"));
  twenty.probe.max_redirects = 20;
  const ProbeResult up = run(twenty, limits);
  EXPECT_TRUE(up.up) << up.error;
  EXPECT_EQ(up.details.redirects, 20);
  EXPECT_EQ(up.status_code, 200);

  twenty.probe.max_redirects = 19;
  const ProbeResult down = run(twenty, limits);
  EXPECT_FALSE(down.up);
  EXPECT_EQ(down.error, "too many redirects");
  EXPECT_EQ(down.status_code, 302);

  ServiceSpec fifty = spec(target_->url("/redirect/50"));
  fifty.probe.max_redirects = 50;  // the most the services file and the API accept
  EXPECT_TRUE(run(fifty, limits).up);
}

TEST_F(HttpProbeTest, HeadDoesNotReadTheBody) {
  ProbeSettings limits;
  limits.max_body_bytes = 16;  // a GET of /endless would exceed this at once
  ServiceSpec head = spec(target_->url("/endless"), 3000ms);
  head.method = "HEAD";
  const ProbeResult r = run(head, limits);
  EXPECT_TRUE(r.up) << r.error;
  EXPECT_EQ(r.status_code, 200);
}

TEST_F(HttpProbeTest, SendsTheSpecHeadersAndVigilUserAgent) {
  ServiceSpec with_header = spec(target_->url("/require-header?name=X-Probe&value=abc"));
  EXPECT_EQ(run(with_header).status_code, 400);  // the route does check
  with_header.headers = {{"X-Probe", "abc"}};
  EXPECT_TRUE(run(with_header).up);

  const ServiceSpec agent = spec(
      target_->url(std::string("/require-header?name=User-Agent&value=vigil/") + VIGIL_VERSION));
  EXPECT_TRUE(run(agent).up);
}

TEST_F(HttpProbeTest, TlsFailureIsReportedAsTls) {
  // A TLS handshake against a plain-HTTP port: the server answers garbage to ClientHello.
  const ProbeResult r = run(spec("https://127.0.0.1:" + std::to_string(target_->port()) + "/ok"));
  EXPECT_FALSE(r.up);
  EXPECT_TRUE(r.error.starts_with("TLS: ")) << r.error;
  EXPECT_GT(r.error.size(), 5u);
}

TEST_F(HttpProbeTest, OnlyHttpAndHttpsAreAllowed) {
  const ProbeResult r = run(spec("file:///etc/hostname"));
  EXPECT_FALSE(r.up);
  EXPECT_TRUE(r.error.starts_with("unsupported protocol")) << r.error;
}

}  // namespace
}  // namespace vigil
