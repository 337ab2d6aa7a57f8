// Conditions against a real local target: each condition passing and failing, with the
// message a user reads in the tick's error; JSON pointers into nested and missing fields; request
// options (method, body, redirects, user agent); phases that add up to the total.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/conditions.h"
#include "runner/probe.h"
#include "runner/runner.h"
#include "support/phase_sum.h"
#include "support/target_server.h"

namespace vigil {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class ConditionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { target_ = new test::TargetServer(); }
  static void TearDownTestSuite() {
    delete target_;
    target_ = nullptr;
  }

  static ServiceSpec spec(const std::string& path, const json& conditions = json::object()) {
    ServiceSpec s;
    s.name = "conditions-test";
    s.url = target_->url(path);
    s.timeout = 2000ms;
    if (!conditions.empty()) s.probe.conditions = parse_conditions(conditions, "test.conditions");
    return s;
  }

  static ProbeResult run(const ServiceSpec& s) {
    auto probe = make_probe(s, ProbeSettings{});
    return run_probe_now(*probe, s.timeout);
  }

  // The error of a probe that must be down, and that it is down.
  static std::string down_error(const ServiceSpec& s) {
    const ProbeResult r = run(s);
    EXPECT_FALSE(r.up);
    return r.error;
  }

  static inline test::TargetServer* target_ = nullptr;
};

std::string text_path(const std::string& body, const std::string& type = "text/plain") {
  return "/text?body=" + body + "&type=" + type;
}

TEST_F(ConditionsTest, BodyContainsAndNotContains) {
  EXPECT_TRUE(run(spec("/ok", {{"body_contains", "ok"}})).up);
  EXPECT_EQ(down_error(spec("/ok", {{"body_contains", "healthy"}})),
            "condition failed: body does not contain \"healthy\"");

  EXPECT_TRUE(run(spec("/ok", {{"body_not_contains", "error"}})).up);
  EXPECT_EQ(down_error(spec(text_path("fatal%20error"), {{"body_not_contains", "error"}})),
            "condition failed: body contains \"error\"");
}

TEST_F(ConditionsTest, BodyRegex) {
  EXPECT_TRUE(run(spec("/json", {{"body_regex", R"("version":"\d+\.\d+")"}})).up);
  EXPECT_EQ(down_error(spec("/json", {{"body_regex", R"("version":"2\.)"}})),
            R"(condition failed: body does not match /"version":"2\./)");
}

// A pattern that backtracks exponentially on a body of letters ending in "!" (std::regex took
// 0.8 s at 24 letters, doubling with each one). The runner evaluates conditions on its own
// thread, so the regex must give its verdict quickly while another service keeps being probed.
TEST_F(ConditionsTest, CatastrophicRegexOnAHostileBodyKeepsOtherProbesOnTime) {
  constexpr ServiceId kHostile = 1;
  constexpr ServiceId kSteady = 2;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Tick> hostile;
  std::vector<Tick> steady;
  const auto sink = [&](const TickRecord& record) {
    std::lock_guard lock(mutex);
    (record.tick.service_id == kHostile ? hostile : steady).push_back(record.tick);
    changed.notify_all();
  };
  const std::string pattern = R"(^(\w+\s?)*$)";
  Service a;
  a.id = kHostile;
  a.spec = spec(text_path(std::string(4000, 'a') + "!"), {{"body_regex", pattern}});
  a.spec.name = "hostile";
  a.spec.interval = 300ms;
  a.spec.timeout = 300ms;
  Service b;
  b.id = kSteady;
  b.spec = spec("/ok");
  b.spec.name = "steady";
  b.spec.interval = 100ms;
  b.spec.timeout = 100ms;

  prometheus::Registry registry;
  Runner runner({}, sink, registry);
  runner.start({a, b}, {});
  std::unique_lock lock(mutex);
  const auto hostile_verdicts = [&](std::size_t n) {
    return changed.wait_for(lock, 20s, [&] { return hostile.size() >= n; });
  };
  ASSERT_TRUE(hostile_verdicts(1)) << steady.size() << " steady ticks, no hostile verdict";
  const std::size_t steady_at_first = steady.size();
  ASSERT_TRUE(hostile_verdicts(4)) << steady.size() << " steady ticks";
  const std::size_t steady_at_fourth = steady.size();
  const auto verdicts = hostile;
  const auto steady_ticks = steady;
  lock.unlock();
  runner.stop();

  for (const auto& tick : verdicts) {
    EXPECT_FALSE(tick.up);
    EXPECT_EQ(tick.error, "condition failed: body does not match /" + pattern + "/");
  }
  // Three more hostile evaluations took about 900 ms of schedule: the 100 ms service was probed
  // all along, each of its ticks up.
  EXPECT_GT(steady_at_fourth, steady_at_first + 3)
      << steady_at_first << " then " << steady_at_fourth;
  for (std::size_t i = 1; i < steady_ticks.size(); ++i) {
    EXPECT_TRUE(steady_ticks[i].up) << steady_ticks[i].error;
    EXPECT_LE(steady_ticks[i].ts - steady_ticks[i - 1].ts, 1000ms) << "tick " << i;
  }
}

TEST_F(ConditionsTest, JsonPointerEqualsNestedAndTopLevel) {
  const json ok = {{"json",
                    {{{"pointer", "/status"}, {"equals", "UP"}},
                     {{"pointer", "/db/ok"}, {"equals", true}},
                     {{"pointer", "/items/1"}, {"equals", 2}}}}};
  const ProbeResult r = run(spec("/json", ok));
  EXPECT_TRUE(r.up) << r.error;

  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/status"}, {"equals", "DOWN"}}}}})),
            "condition failed: json /status is \"UP\", expected \"DOWN\"");
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/db/ok"}, {"equals", false}}}}})),
            "condition failed: json /db/ok is true, expected false");
}

TEST_F(ConditionsTest, JsonPointerMissingFieldsAndExists) {
  EXPECT_TRUE(
      run(spec("/json", {{"json", {{{"pointer", "/db/latency_ms"}, {"exists", true}}}}})).up);
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/db/replica"}, {"exists", true}}}}})),
            "condition failed: json /db/replica is missing");
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/cache/hit"}, {"equals", 1}}}}})),
            "condition failed: json /cache/hit is missing");
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/items/7"}, {"exists", true}}}}})),
            "condition failed: json /items/7 is missing");
  EXPECT_TRUE(
      run(spec("/json", {{"json", {{{"pointer", "/maintenance"}, {"exists", false}}}}})).up);
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/status"}, {"exists", false}}}}})),
            "condition failed: json /status exists (\"UP\")");
}

TEST_F(ConditionsTest, JsonPointerNumericBounds) {
  EXPECT_TRUE(
      run(spec("/json", {{"json", {{{"pointer", "/db/latency_ms"}, {"lt", 50}, {"gt", 1}}}}})).up);
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/db/latency_ms"}, {"lt", 10}}}}})),
            "condition failed: json /db/latency_ms is 12, expected < 10");
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/db/latency_ms"}, {"gt", 12.5}}}}})),
            "condition failed: json /db/latency_ms is 12, expected > 12.5");
  EXPECT_EQ(down_error(spec("/json", {{"json", {{{"pointer", "/status"}, {"lt", 1}}}}})),
            "condition failed: json /status is \"UP\", not a number");
}

TEST_F(ConditionsTest, JsonConditionOnABodyThatIsNotJson) {
  EXPECT_EQ(down_error(spec("/ok", {{"json", {{{"pointer", "/status"}, {"equals", "UP"}}}}})),
            "condition failed: json /status: body is not JSON");
}

TEST_F(ConditionsTest, HeaderContains) {
  EXPECT_TRUE(
      run(spec("/json", {{"header", {{"name", "Content-Type"}, {"contains", "json"}}}})).up);
  EXPECT_EQ(down_error(spec("/ok", {{"header", {{"name", "content-type"}, {"contains", "json"}}}})),
            "condition failed: header content-type is \"text/plain\", expected to contain "
            "\"json\"");
  EXPECT_EQ(down_error(spec("/ok", {{"header", {{"name", "x-missing"}, {"contains", "a"}}}})),
            "condition failed: header x-missing is missing");
}

TEST_F(ConditionsTest, MaxResponseMs) {
  EXPECT_TRUE(run(spec("/ok", {{"max_response_ms", 1000}})).up);
  const std::string error = down_error(spec("/slow?ms=300", {{"max_response_ms", 100}}));
  EXPECT_TRUE(error.starts_with("condition failed: response took 3")) << error;
  EXPECT_TRUE(error.ends_with(" ms, more than 100 ms")) << error;
}

TEST_F(ConditionsTest, CertificateConditionWithoutTlsFails) {
  EXPECT_EQ(down_error(spec("/ok", {{"cert_expires_in_days_min", 1}})),
            "condition failed: no TLS certificate");
}

TEST_F(ConditionsTest, StatusAndEveryFailingConditionAreNamedTogether) {
  ServiceSpec s = spec("/status/503", {{"body_contains", "ok"}, {"max_response_ms", 5000}});
  const ProbeResult r = run(s);
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.error,
            "HTTP status 503 not expected; condition failed: body does not contain \"ok\"");
  // The report lists every check with its outcome, status first.
  ASSERT_EQ(r.details.conditions.size(), 3u);
  EXPECT_EQ(r.details.conditions[0].condition, "status 503 in 200-399");
  EXPECT_FALSE(r.details.conditions[0].passed);
  EXPECT_EQ(r.details.conditions[1].condition, "body contains \"ok\"");
  EXPECT_FALSE(r.details.conditions[1].passed);
  EXPECT_EQ(r.details.conditions[2].condition, "response within 5000 ms");
  EXPECT_TRUE(r.details.conditions[2].passed);

  ServiceSpec two = spec(text_path("nope"), {{"body_contains", "ok"}, {"body_regex", "^yes"}});
  EXPECT_EQ(down_error(two),
            "condition failed: body does not contain \"ok\"; condition failed: body does not "
            "match /^yes/");
}

TEST_F(ConditionsTest, RedirectsAreFollowedCountedAndCapped) {
  ServiceSpec s = spec("/redirect/3");
  const ProbeResult followed = run(s);
  EXPECT_TRUE(followed.up) << followed.error;
  EXPECT_EQ(followed.status_code, 200);
  EXPECT_EQ(followed.details.redirects, 3);
  EXPECT_EQ(followed.details.final_url, target_->url("/redirect/0"));

  s.probe.max_redirects = 2;
  const ProbeResult capped = run(s);
  EXPECT_FALSE(capped.up);
  EXPECT_EQ(capped.error, "too many redirects");

  s.probe.follow_redirects = false;  // the 302 itself is the answer, and 302 is in 200-399
  const ProbeResult not_followed = run(s);
  EXPECT_TRUE(not_followed.up) << not_followed.error;
  EXPECT_EQ(not_followed.status_code, 302);
  EXPECT_EQ(not_followed.details.redirects, 0);
}

TEST_F(ConditionsTest, MethodAndBodyAreSent) {
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    ServiceSpec s = spec("/echo", {{"body_contains", std::string(method) + " {\"ping\":1}"}});
    s.method = method;
    s.probe.body = R"({"ping":1})";
    const ProbeResult r = run(s);
    EXPECT_TRUE(r.up) << method << ": " << r.error;
  }
  ServiceSpec empty_post = spec("/echo", {{"body_contains", "POST "}});
  empty_post.method = "POST";
  EXPECT_TRUE(run(empty_post).up);
}

TEST_F(ConditionsTest, UserAgentDefaultsToVigilAndCanBeSet) {
  ServiceSpec s = spec("/require-header?name=User-Agent&value=probe-bot/2");
  EXPECT_EQ(run(s).status_code, 400);
  s.probe.user_agent = "probe-bot/2";
  EXPECT_TRUE(run(s).up);
}

TEST_F(ConditionsTest, IpVersionSixCannotReachAnIpv4Target) {
  ServiceSpec s = spec("/ok");
  s.url = "http://localhost:" + std::to_string(target_->port()) + "/ok";
  s.probe.ip_version = IpVersion::v4;
  EXPECT_TRUE(run(s).up);
  s.probe.ip_version = IpVersion::v6;  // the target listens on 127.0.0.1 only
  EXPECT_FALSE(run(s).up);
}

TEST_F(ConditionsTest, ProxyFromTheEnvironmentIsIgnoredUnlessConfigured) {
  // A proxy variable pointing at a closed port would make every probe fail if curl used it.
  const std::string dead_proxy = "http://127.0.0.1:" + std::to_string(test::closed_port());
  ::setenv("http_proxy", dead_proxy.c_str(), 1);
  ::setenv("HTTP_PROXY", dead_proxy.c_str(), 1);
  const ProbeResult direct = run(spec("/ok"));
  ServiceSpec through = spec("/ok");
  through.probe.proxy = dead_proxy;
  const ProbeResult proxied = run(through);
  ::unsetenv("http_proxy");
  ::unsetenv("HTTP_PROXY");
  EXPECT_TRUE(direct.up) << direct.error;
  EXPECT_FALSE(proxied.up);  // the configured proxy is used, and it is not there
}

TEST_F(ConditionsTest, PhasesArePresentAndAddUpToTheTotal) {
  const ProbeResult r = run(spec("/slow?ms=50"));
  ASSERT_TRUE(r.up) << r.error;
  ASSERT_TRUE(r.phases);
  const PhaseTimings& p = *r.phases;
  EXPECT_NEAR(test::phase_sum(p), r.response_ms, 0.001);
  for (double phase : {p.resolve_ms, p.connect_ms, p.tls_ms, p.processing_ms, p.transfer_ms})
    EXPECT_GE(phase, 0);
  EXPECT_EQ(p.tls_ms, 0);          // plain HTTP
  EXPECT_GE(p.processing_ms, 45);  // the server thinks for 50 ms before the first byte
  EXPECT_GT(p.connect_ms, 0);
  EXPECT_EQ(r.details.resolved_ip, "127.0.0.1");
  EXPECT_FALSE(r.details.tls);
  EXPECT_EQ(r.details.content_length, 4);  // "slow"
  EXPECT_EQ(r.details.body_bytes, 4);
}

TEST_F(ConditionsTest, AFailedProbeChargesTheRestToThePhaseItWasIn) {
  const ProbeResult timeout = run([] {
    ServiceSpec s = spec("/hang?ms=2000");
    s.timeout = 300ms;
    return s;
  }());
  ASSERT_TRUE(timeout.phases);
  EXPECT_NEAR(test::phase_sum(*timeout.phases), timeout.response_ms, 0.001);
  EXPECT_GE(timeout.phases->processing_ms, 250);  // waiting for the first byte
  EXPECT_EQ(timeout.phases->transfer_ms, 0);

  ServiceSpec refused = spec("/");
  refused.url = "http://127.0.0.1:" + std::to_string(test::closed_port()) + "/";
  const ProbeResult r = run(refused);
  ASSERT_TRUE(r.phases);
  EXPECT_NEAR(test::phase_sum(*r.phases), r.response_ms, 0.001);
  EXPECT_EQ(r.phases->processing_ms, 0);
  EXPECT_EQ(r.phases->transfer_ms, 0);
}

TEST(PhasesFromMarks, StepsBetweenMarksAndTheRestToTheOpenPhase) {
  // A complete https transfer: 1 ms resolve, 2 connect, 5 TLS, 10 to first byte, 3 transfer.
  PhaseTimings p = phases_from_marks(1000, 3000, 8000, 18000, 21000, true);
  EXPECT_EQ(p, (PhaseTimings{1, 2, 5, 10, 3}));
  // Plain http: no TLS phase even though curl sets no appconnect mark.
  p = phases_from_marks(1000, 3000, 0, 18000, 21000, false);
  EXPECT_EQ(p, (PhaseTimings{1, 2, 0, 15, 3}));
  // A TLS handshake that never finished (timeout at 2 s): the handshake gets the rest.
  p = phases_from_marks(1000, 3000, 0, 0, 2'000'000, true);
  EXPECT_EQ(p, (PhaseTimings{1, 2, 1997, 0, 0}));
  // Resolution that never finished.
  p = phases_from_marks(0, 0, 0, 0, 5000, true);
  EXPECT_EQ(p, (PhaseTimings{5, 0, 0, 0, 0}));
  // An IP literal resolves in no measurable time: a later mark proves the phase was passed.
  p = phases_from_marks(0, 2000, 0, 4000, 5000, false);
  EXPECT_EQ(p, (PhaseTimings{0, 2, 0, 2, 1}));
}

}  // namespace
}  // namespace vigil
