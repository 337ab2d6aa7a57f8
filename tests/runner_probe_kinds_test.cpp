// The probe-kind registry (core/probe_kind.h) against the probes (runner/probe_kinds.cpp): every
// scheme of every kind passes the services file's URL rules and gets a probe of its own kind,
// run to the end on a real local listener; a scheme no kind has is refused, naming them all.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "core/config_error.h"
#include "core/probe_kind.h"
#include "runner/probe.h"
#include "support/raw_target.h"

namespace vigil {
namespace {

using namespace std::chrono_literals;

TEST(ProbeKinds, EveryKindsSchemesAreAcceptedAndGetThatKindsProbe) {
  // Accepts and stays silent: a TCP probe is up, an HTTP(S) one times out waiting.
  test::RawTarget target([](test::RawConnection& c) { c.wait_for_close(2s); });
  int schemes = 0;
  for (const ProbeKindInfo& kind : probe_kinds()) {
    for (const std::string_view scheme : kind.schemes) {
      if (scheme.empty()) continue;
      ++schemes;
      const std::string url =
          std::string(scheme) + "://127.0.0.1:" + std::to_string(target.port()) + "/";
      SCOPED_TRACE(url);
      const nlohmann::json entry = {{"name", "kind"}, {"url", url}, {"timeout_seconds", 0.3}};
      const ServiceSpec spec = parse_service_spec(entry, "test", Settings{});
      ASSERT_EQ(probe_kind_for(spec.url), &kind);
      EXPECT_EQ(probe_scheme_of(spec.url), std::string(scheme) + "://");
      const auto probe = make_probe(spec, ProbeSettings{});
      const ProbeResult result = run_probe_now(*probe, spec.timeout);
      // The HTTP probe reports HTTP details whatever happened; the TCP probe never does.
      EXPECT_EQ(result.details.http, kind.http);
      EXPECT_EQ(result.up, !kind.http) << result.error;
    }
  }
  EXPECT_EQ(schemes, 3);  // http, https, tcp
}

TEST(ProbeKinds, AnUnknownSchemeIsRefusedNamingEveryKnownOne) {
  EXPECT_EQ(probe_kind_for("ftp://127.0.0.1/"), nullptr);
  EXPECT_EQ(probe_kind_for("tcpx://127.0.0.1:1"), nullptr);
  EXPECT_EQ(probe_schemes_text(), "http://, https:// or tcp://");
  try {
    parse_service_spec({{"name", "ftp"}, {"url", "ftp://127.0.0.1/"}}, "test", Settings{});
    ADD_FAILURE() << "ftp:// accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must start with http://, https:// or tcp://"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace vigil
