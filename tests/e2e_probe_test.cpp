// `vigil probe` end to end: the real binary against a real local HTTP, HTTPS and TCP
// target, no database; its report, its JSON and its exit codes.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.h"
#include "support/raw_target.h"
#include "support/target_server.h"
#include "support/text.h"
#include "support/tls_target.h"

namespace vigil::test {
namespace {

using nlohmann::json;

// Runs `vigil probe <args>` in an empty directory (no .env, no database); stdout and stderr.
CommandResult probe(const std::string& args, const TempDir& dir) {
  return run_command("cd " + dir.path() + " && " + VIGIL_BINARY + " probe " + args);
}

// Only stdout, for the JSON.
CommandResult probe_stdout(const std::string& args, const TempDir& dir) {
  return run_command("(cd " + dir.path() + " && " + VIGIL_BINARY + " probe " + args +
                     " 2>/dev/null)");
}

class ProbeCommand : public ::testing::Test {
 protected:
  TargetServer target;
  TempDir dir;
};

TEST_F(ProbeCommand, ReportOfAnUpProbeWithConditions) {
  const auto r = probe("'" + target.url("/json") +
                           "' --expect json=/status==UP --expect 'header=content-type:json'"
                           " --expect max_response_ms=2000",
                       dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::string& out = r.output;
  EXPECT_TRUE(contains(out, "  result       UP\n")) << out;
  EXPECT_TRUE(contains(out, "  resolved ip  127.0.0.1\n")) << out;
  EXPECT_TRUE(contains(out, "  status       200\n")) << out;
  for (const char* phase : {"resolve", "connect", "tls", "processing", "transfer", "total"})
    EXPECT_TRUE(contains(out, std::string("    ") + phase)) << phase << "\n" << out;
  EXPECT_TRUE(contains(out, " ms  #")) << out;  // bars
  EXPECT_TRUE(contains(out, "  size         80 bytes (Content-Length 80)\n")) << out;
  EXPECT_TRUE(contains(out, "  redirects    0\n")) << out;
  EXPECT_TRUE(contains(out, "    PASS  status 200 in 200-399\n")) << out;
  EXPECT_TRUE(contains(out, "    PASS  json /status equals \"UP\"\n")) << out;
  EXPECT_TRUE(contains(out, "    PASS  header content-type contains \"json\"\n")) << out;
  EXPECT_TRUE(contains(out, "    PASS  response within 2000 ms\n")) << out;
  EXPECT_FALSE(contains(out, "FAIL")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("vigil.db")));  // no database involved
}

TEST_F(ProbeCommand, FailingConditionIsExitOneAndNamed) {
  const auto r = probe("'" + target.url("/ok") + "' --expect body_contains=healthy", dir);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(
      r.output, "  result       DOWN: condition failed: body does not contain \"healthy\"\n"))
      << r.output;
  EXPECT_TRUE(contains(r.output,
                       "    FAIL  body contains \"healthy\"  (body does not contain "
                       "\"healthy\")\n"))
      << r.output;

  const auto refused = probe("http://127.0.0.1:" + std::to_string(closed_port()) + "/", dir);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output, "DOWN: connection refused")) << refused.output;
}

TEST_F(ProbeCommand, JsonOutputParsesAndAgreesWithItself) {
  const auto r = probe_stdout(
      "'" + target.url("/redirect/2") + "' --json --expect body_contains=ok --expect status=200",
      dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json report = json::parse(r.output);
  EXPECT_EQ(report["up"], true);
  EXPECT_EQ(report["status_code"], 200);
  EXPECT_EQ(report["redirects"], 2);
  EXPECT_EQ(report["final_url"], target.url("/redirect/0"));
  EXPECT_EQ(report["resolved_ip"], "127.0.0.1");
  EXPECT_TRUE(report["error"].is_null());
  EXPECT_TRUE(report["tls"].is_null());
  double sum = 0;
  for (const auto& [phase, ms] : report["phases_ms"].items()) sum += ms.get<double>();
  EXPECT_NEAR(sum, report["response_ms"].get<double>(), 0.001);
  ASSERT_EQ(report["conditions"].size(), 2u);
  EXPECT_EQ(report["conditions"][0]["condition"], "status 200 in 200");
  EXPECT_EQ(report["conditions"][1]["condition"], "body contains \"ok\"");
  EXPECT_EQ(report["conditions"][1]["passed"], true);
}

TEST_F(ProbeCommand, MethodAndHeaderAreSent) {
  EXPECT_EQ(
      probe("'" + target.url("/echo") + "' --method DELETE --expect body_contains=DELETE", dir)
          .exit_code,
      0);
  const std::string header_url = target.url("/require-header?name=X-Key&value=k1");
  EXPECT_EQ(probe("'" + header_url + "'", dir).exit_code, 1);
  EXPECT_EQ(probe("'" + header_url + "' --header 'X-Key: k1'", dir).exit_code, 0);
}

TEST_F(ProbeCommand, HttpsCertificateReportAndInsecure) {
  const auto cert = make_self_signed_certificate(dir, 2);
  TlsTargetServer tls(cert);
  const auto verified = probe(tls.url("/ok"), dir);
  EXPECT_EQ(verified.exit_code, 1) << verified.output;
  EXPECT_TRUE(contains(verified.output, "DOWN: TLS: ")) << verified.output;

  const auto insecure =
      probe(tls.url("/ok") + " --insecure --expect cert_expires_in_days_min=1", dir);
  EXPECT_EQ(insecure.exit_code, 0) << insecure.output;
  EXPECT_TRUE(contains(insecure.output, "  tls          TLSv1.")) << insecure.output;
  EXPECT_TRUE(contains(insecure.output, "  certificate 0 (leaf)\n")) << insecure.output;
  EXPECT_TRUE(contains(insecure.output, "    subject    ")) << insecure.output;
  EXPECT_TRUE(contains(insecure.output, "localhost")) << insecure.output;
  EXPECT_TRUE(contains(insecure.output, " UTC (in 1.9 days)") ||
              contains(insecure.output, " UTC (in 2.0 days)"))
      << insecure.output;
  EXPECT_TRUE(contains(insecure.output, "    PASS  certificate valid for at least 1 days"))
      << insecure.output;

  const auto soon = probe(tls.url("/ok") + " --insecure --expect cert_expires_in_days_min=30", dir);
  EXPECT_EQ(soon.exit_code, 1) << soon.output;
}

TEST_F(ProbeCommand, TcpPorts) {
  RawTarget open([](RawConnection& c) { c.wait_for_close(std::chrono::seconds(2)); });
  const auto up = probe("tcp://127.0.0.1:" + std::to_string(open.port()), dir);
  EXPECT_EQ(up.exit_code, 0) << up.output;
  EXPECT_TRUE(contains(up.output, "  result       UP\n")) << up.output;
  EXPECT_FALSE(contains(up.output, "  status ")) << up.output;
  EXPECT_EQ(probe("tcp://127.0.0.1:" + std::to_string(closed_port()), dir).exit_code, 1);
}

TEST_F(ProbeCommand, TimeoutCutsAnAnswerThatDoesNotCome) {
  const auto started = std::chrono::steady_clock::now();
  const auto r = probe("'" + target.url("/hang?ms=5000") + "' --timeout 0.3", dir);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "  result       DOWN: timeout after 300 ms\n")) << r.output;
  EXPECT_LT(took, std::chrono::seconds(3));  // cut at 0.3 s, not the 10 s default
}

TEST_F(ProbeCommand, BadArgumentsAreExitTwoWithAReason) {
  const auto none = probe("", dir);
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_TRUE(contains(none.output, "a URL is required")) << none.output;
  EXPECT_TRUE(contains(none.output, "usage: vigil probe URL")) << none.output;

  const auto option = probe(target.url("/ok") + " --fast", dir);
  EXPECT_EQ(option.exit_code, 2);
  EXPECT_TRUE(contains(option.output, "unknown option --fast")) << option.output;

  const auto scheme = probe("ftp://127.0.0.1/", dir);
  EXPECT_EQ(scheme.exit_code, 2);
  EXPECT_TRUE(contains(scheme.output, "must start with http://, https:// or tcp://"))
      << scheme.output;

  const auto regex = probe(target.url("/ok") + " --expect 'body_regex=([a-z'", dir);
  EXPECT_EQ(regex.exit_code, 2);
  EXPECT_TRUE(contains(regex.output,
                       "conditions.body_regex: \"([a-z\" is not a valid regular "
                       "expression"))
      << regex.output;

  const auto condition = probe(target.url("/ok") + " --expect speed=fast", dir);
  EXPECT_EQ(condition.exit_code, 2);
  EXPECT_TRUE(contains(condition.output, "--expect speed: unknown condition")) << condition.output;

  EXPECT_EQ(probe(target.url("/ok") + " --timeout soon", dir).exit_code, 2);
  EXPECT_EQ(probe(target.url("/ok") + " --method", dir).exit_code, 2);
  EXPECT_EQ(probe(target.url("/ok") + " " + target.url("/ok"), dir).exit_code, 2);

  const auto help = probe("--help", dir);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.output, "Exit code: 0 up, 1 down, 2 bad arguments.")) << help.output;
}

}  // namespace
}  // namespace vigil::test
