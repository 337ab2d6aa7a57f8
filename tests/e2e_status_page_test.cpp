// The status page end to end in a real browser: the real vigil binary (`vigil api`) serves a
// database seeded through the Store API, headless chromium (loopback only) loads / and
// /services/{id}, saves screenshots into the build folder, and the DOM it built (--dump-dom) is
// checked for the service rows. Skipped, with the reason, only when chromium is not installed.
// SQLite only: what is tested is the browser's rendering, which takes a quarter of a minute;
// the pages' data from PostgreSQL is checked in api_status_page_test, on both backends.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"
#include "support/markup_check.h"
#include "support/process.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kMin = 60'000;

std::string find_chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (std::filesystem::exists(path)) return path;
  return {};
}

// Where the screenshots go: the build folder (the test binary's directory's parent).
std::filesystem::path screenshot_dir() {
  std::filesystem::path dir = std::filesystem::path(VIGIL_BINARY).parent_path() / "screenshots";
  std::filesystem::create_directories(dir);
  return dir;
}

class BrowserEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium = find_chromium();
    if (chromium.empty())
      GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh test)";
    std::ofstream(dir.file("services.json")) << "[]";
    seed();
  }

  // Three services through the Store API, with a minute of ticks each; "db" is down.
  void seed() {
    auto store = open_sqlite_store(dir.file("vigil.db"));
    const std::int64_t now = to_unix_ms(now_ms());
    for (const std::string name : {"web <frontend>", "db", "queue & jobs"}) {
      ServiceSpec spec;
      spec.name = name;
      spec.url = "http://127.0.0.1:1/";
      spec.interval = Millis(kMin);  // as seeded: no runner here, so not stale for 2 min 15 s
      spec.team = name == "db" ? "storage" : "";
      const ServiceId id = store->create_service(spec, from_unix_ms(now - 60 * kMin)).id;
      ids.push_back(id);
      std::vector<TickRecord> batch;
      Metric metric;
      for (int i = 0; i < 30; ++i) {
        TickRecord r;
        r.tick.service_id = id;
        r.tick.ts = from_unix_ms(now - 30 * kMin + i * kMin);
        r.tick.up = !(name == "db" && i >= 25);
        r.tick.response_ms = 20 + i;
        metric.add(r.tick.up, r.tick.response_ms);
        r.metric_after = metric;
        if (i == 0 || (name == "db" && i == 25))
          r.opens_event = r.tick.up ? EventKind::uptime : EventKind::downtime;
        batch.push_back(r);
      }
      store->apply(batch);
    }
  }

  // Runs headless chromium on `url` with `mode` (--dump-dom or --screenshot=FILE), bounded to
  // 60 s; returns its stdout.
  std::string browse(const std::string& url, const std::string& mode) {
    const std::string out = dir.file("chromium.out");
    // No network but loopback: every host name fails to resolve except 127.0.0.1, no proxy,
    // no background services.
    const std::string command =
        "timeout -k 5 60 " + chromium +
        " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
        " --no-default-browser-check --disable-background-networking --disable-component-update"
        " --disable-sync --disable-extensions --no-proxy-server --window-size=1280,1600"
        " --host-resolver-rules='MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'"
        " --user-data-dir=" +
        dir.file("chromium-profile") + " " + mode + " '" + url + "' > " + out + " 2> " +
        dir.file("chromium.err");
    const CommandResult result = run_command(command);
    EXPECT_EQ(result.exit_code, 0) << command << "\n" << read_file(dir.file("chromium.err"));
    // Chromium may print diagnostics to stdout before the document.
    const std::string text = read_file(out);
    const auto start = text.find("<!DOCTYPE");
    return start == std::string::npos ? text : text.substr(start);
  }

  TempDir dir;
  int api_port = closed_port();
  std::string chromium;
  std::vector<ServiceId> ids;
};

TEST_F(BrowserEndToEnd, ChromiumRendersTheStatusPageAndAServicePage) {
  VigilProcess vigil(dir, "api", api_port, {{"STATUS_PAGE_TITLE", "Browser <test>"}});
  const std::string base = "http://127.0.0.1:" + std::to_string(api_port);
  ASSERT_TRUE(eventually(
      [&] {
        httplib::Client client("127.0.0.1", api_port);
        client.set_connection_timeout(1);
        const auto res = client.Get("/healthz");
        return res && res->status == 200;
      },
      15s))
      << vigil.log();

  const auto started = std::chrono::steady_clock::now();
  const std::string dom = browse(base + "/", "--dump-dom");
  // The DOM chromium built: one row per service with its state, the names as text.
  ASSERT_NE(dom.find("svc-" + std::to_string(ids[0])), std::string::npos) << dom.substr(0, 2000);
  for (const auto id : ids) {
    const std::string marker = "id=\"svc-" + std::to_string(id) + "\"";
    EXPECT_NE(dom.find(marker), std::string::npos) << marker;
  }
  EXPECT_NE(dom.find("web &lt;frontend&gt;"), std::string::npos);
  EXPECT_NE(dom.find("queue &amp; jobs"), std::string::npos);
  EXPECT_NE(dom.find("1 service down"), std::string::npos);
  EXPECT_NE(dom.find("data-state=\"down\""), std::string::npos);
  EXPECT_NE(dom.find("<title>Browser &lt;test&gt;</title>"), std::string::npos);
  // Chromium serialises the DOM as HTML; it is still well-formed by the strict checker.
  const MarkupNode page = parse_markup(dom, MarkupMode::html);
  EXPECT_EQ(page.all("div", "class", "svc").size(), 3u);

  const std::string service_url = base + "/services/" + std::to_string(ids[1]);
  const std::string service_dom = browse(service_url, "--dump-dom");
  EXPECT_NE(service_dom.find("id=\"service-name\">db</h1>"), std::string::npos);
  EXPECT_NE(service_dom.find("ongoing"), std::string::npos);

  const auto shots = screenshot_dir();
  std::filesystem::remove(shots / "status-page.png");
  std::filesystem::remove(shots / "service-page.png");
  browse(base + "/", "--screenshot=" + (shots / "status-page.png").string());
  browse(service_url, "--screenshot=" + (shots / "service-page.png").string());
  for (const char* shot : {"status-page.png", "service-page.png"}) {
    ASSERT_TRUE(std::filesystem::exists(shots / shot)) << shot;
    EXPECT_GT(std::filesystem::file_size(shots / shot), 5'000u) << shot;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 100s);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

}  // namespace
}  // namespace vigil::test
