// Every example in README.md and docs/*.md runs as written. An example says what it is in its
// fence's info string, after the language:
//   ```json services-file   a whole services file: `vigil check-config` accepts it
//   ```json service         one service object: accepted as a services file of that one service
//   ```sh api               curl calls of the API: each calls an operation of api/openapi.json,
//                           and the block, run by sh against a real vigil on loopback (its
//                           localhost:9999 pointed at that vigil), gets a 2xx for every call
//                           it makes
// Other fences (responses, log lines, cron lines, make) are left alone. The relative links of
// the same files must lead to files and headings that exist.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/target_server.h"
#include "support/vigil_process.h"

namespace vigil::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The token the api examples send as $API_TOKEN, and the environment the services-file examples
// name with ${...}: the docs say these must be set.
constexpr const char* kApiToken = "docs-example-token-0123456789abcdef";
const std::map<std::string, std::string> kExampleEnvironment = {
    {"HOOK_TOKEN", "hook-secret"},
    {"PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY0000000000000000000000"},
    {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX"}};

struct Example {
  std::string where;  // file:line of the opening fence
  std::string kind;   // services-file, service or api
  std::string text;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// README.md, then docs/*.md by name.
std::vector<std::filesystem::path> doc_files() {
  const std::filesystem::path root = VIGIL_SOURCE_DIR;
  std::vector<std::filesystem::path> files = {root / "README.md"};
  std::vector<std::filesystem::path> docs;
  for (const auto& entry : std::filesystem::directory_iterator(root / "docs"))
    if (entry.path().extension() == ".md") docs.push_back(entry.path());
  std::sort(docs.begin(), docs.end());
  files.insert(files.end(), docs.begin(), docs.end());
  return files;
}

// The lines of a Markdown file outside fenced blocks.
std::vector<std::string> prose_lines(const std::filesystem::path& file) {
  std::istringstream in(read_text(file));
  std::vector<std::string> lines;
  bool in_fence = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("```"))
      in_fence = !in_fence;
    else if (!in_fence)
      lines.push_back(line);
  }
  return lines;
}

// The anchors GitHub gives a file's headings: lower case, spaces as hyphens, and only letters,
// digits, hyphens and underscores kept.
std::set<std::string> heading_anchors(const std::filesystem::path& file) {
  std::set<std::string> anchors;
  for (const auto& line : prose_lines(file)) {
    std::smatch match;
    if (!std::regex_match(line, match, std::regex("#+ (.*)"))) continue;
    std::string anchor;
    for (const unsigned char c : match[1].str()) {
      if (std::isalnum(c) || c == '_' || c == '-')
        anchor += static_cast<char>(std::tolower(c));
      else if (c == ' ')
        anchor += '-';
    }
    anchors.insert(anchor);
  }
  return anchors;
}

// The marked examples of doc_files(), in file order, each file's blocks in document order.
std::vector<Example> marked_examples() {
  std::vector<Example> examples;
  for (const auto& file : doc_files()) {
    std::istringstream in(read_text(file));
    std::string line;
    int number = 0;
    std::optional<Example> open;
    bool in_fence = false;
    while (std::getline(in, line)) {
      ++number;
      if (!line.starts_with("```")) {
        if (open) open->text += line + "\n";
        continue;
      }
      if (in_fence) {
        if (open) examples.push_back(std::move(*open));
        open.reset();
        in_fence = false;
        continue;
      }
      in_fence = true;
      std::istringstream info(line.substr(3));
      std::string language, kind;
      info >> language >> kind;
      if (!kind.empty())
        open = Example{file.filename().string() + ":" + std::to_string(number), kind, ""};
    }
  }
  return examples;
}

std::vector<Example> of_kind(const std::string& kind) {
  std::vector<Example> found;
  for (auto& example : marked_examples())
    if (example.kind == kind) found.push_back(example);
  return found;
}

// The curl calls of an api block: its lines with `\` continuations joined, those that run curl.
std::vector<std::string> curl_calls(const std::string& block) {
  std::string joined = std::regex_replace(block, std::regex("\\\\\n\\s*"), " ");
  std::vector<std::string> calls;
  std::istringstream in(joined);
  std::string line;
  while (std::getline(in, line))
    if (std::regex_search(line, std::regex("(^|[$(\\s])curl\\s"))) calls.push_back(line);
  return calls;
}

struct Call {
  std::string method;
  std::string path;  // without the query
};

// The method and path a curl call asks for: -X, else POST when it sends a body (-d), else GET;
// the path of its localhost:9999 URL.
std::optional<Call> parse_call(const std::string& line) {
  std::smatch match;
  Call call;
  if (std::regex_search(line, match, std::regex("-X\\s+([A-Z]+)")))
    call.method = match[1];
  else if (std::regex_search(line, std::regex("\\s-d\\s")))
    call.method = "POST";
  else
    call.method = "GET";
  if (!std::regex_search(line, match, std::regex("localhost:9999(/[^?'\"\\s]*)"))) return {};
  call.path = match[1];
  return call;
}

// The document's path template that `path` is an instance of ({x} matching one segment), with
// `method`; empty when none.
std::string documented_template(const json& document, const Call& call) {
  const auto segments = [](const std::string& path) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(path);
    while (std::getline(in, part, '/')) parts.push_back(part);
    return parts;
  };
  const auto asked = segments(call.path);
  std::string method = call.method;
  std::transform(method.begin(), method.end(), method.begin(), ::tolower);
  for (const auto& [path, operations] : document["paths"].items()) {
    const auto pattern = segments(path);
    if (pattern.size() != asked.size() || !operations.contains(method)) continue;
    bool same = true;
    for (size_t i = 0; i < pattern.size() && same; ++i) {
      const bool parameter = pattern[i].starts_with("{") && pattern[i].ends_with("}");
      same = parameter ? !asked[i].empty() : pattern[i] == asked[i];
    }
    if (same) return path;
  }
  return "";
}

TEST(DocsExamples, AreMarkedInEveryKindAndNoOtherKind) {
  std::map<std::string, int> kinds;
  for (const auto& example : marked_examples()) ++kinds[example.kind];
  EXPECT_GE(kinds["services-file"], 3);
  EXPECT_GE(kinds["service"], 1);
  EXPECT_GE(kinds["api"], 8);
  for (const auto& [kind, count] : kinds)
    EXPECT_TRUE(kind == "services-file" || kind == "service" || kind == "api")
        << count << " examples of unknown kind " << kind;
}

// Every relative link of the docs names a file that exists and, with a #fragment, a heading
// of that file.
TEST(DocsLinks, LeadToExistingFilesAndHeadings) {
  int links = 0;
  for (const auto& file : doc_files()) {
    for (const auto& line : prose_lines(file)) {
      const std::regex link("\\[[^\\]]*\\]\\(([^)\\s]+)\\)");
      for (auto it = std::sregex_iterator(line.begin(), line.end(), link);
           it != std::sregex_iterator(); ++it) {
        const std::string target = (*it)[1];
        if (target.starts_with("http://") || target.starts_with("https://")) continue;
        ++links;
        const auto hash = target.find('#');
        const std::string path = target.substr(0, hash);
        const auto resolved = path.empty() ? file : file.parent_path() / path;
        ASSERT_TRUE(std::filesystem::exists(resolved))
            << file.filename() << ": " << target << " does not exist";
        if (hash != std::string::npos) {
          EXPECT_TRUE(heading_anchors(resolved).count(target.substr(hash + 1)))
              << file.filename() << ": no heading for " << target;
        }
      }
    }
  }
  EXPECT_GE(links, 30);
}

TEST(DocsExamples, ServicesFilesPassCheckConfig) {
  for (const auto& example : marked_examples()) {
    if (example.kind != "services-file" && example.kind != "service") continue;
    TempDir dir;
    std::ofstream(dir.file("services.json"), std::ios::binary)
        << (example.kind == "service" ? "[" + example.text + "]" : example.text);
    std::string env;
    for (const auto& [key, value] : kExampleEnvironment) env += key + "='" + value + "' ";
    const auto result = run_command("cd " + dir.path() + " && env -u DATABASE_URL " + env +
                                    "DB_FILE=vigil.db SERVICES_FILE=services.json " + VIGIL_BINARY +
                                    " check-config 2>&1");
    EXPECT_EQ(result.exit_code, 0) << example.where << "\n" << example.text << result.output;
  }
}

TEST(DocsExamples, CurlCallsAreOperationsOfTheOpenApiDocument) {
  const json document =
      json::parse(read_text(std::filesystem::path(VIGIL_SOURCE_DIR) / "api/openapi.json"));
  int calls = 0;
  for (const auto& example : of_kind("api")) {
    for (const auto& line : curl_calls(example.text)) {
      ++calls;
      const auto call = parse_call(line);
      ASSERT_TRUE(call) << example.where << ": no localhost:9999 URL in " << line;
      EXPECT_NE(documented_template(document, *call), "")
          << example.where << ": " << call->method << " " << call->path
          << " is not an operation of api/openapi.json";
    }
  }
  EXPECT_GE(calls, 12);
}

// The api blocks run in document order against one vigil, so a block may use what an earlier
// one created (the service ids below). $API_TOKEN is the write token; $TOKEN, when a heartbeat
// exists, its push token.
TEST(DocsExamples, CurlBlocksRunAgainstARealVigil) {
  if (run_command("command -v curl && command -v jq").exit_code != 0)
    GTEST_SKIP() << "curl or jq missing (scripts/install-deps.sh test installs them)";
  TempDir dir;
  // The two services of services.example.json: ids 1 and 2, as the examples assume.
  std::ofstream(dir.file("services.json"))
      << R"([{"name": "vigil-self", "url": "http://127.0.0.1:9/healthz", "interval_seconds": 1},
            {"name": "closed-port", "url": "http://127.0.0.1:9/", "interval_seconds": 1}])";
  const int port = closed_port();
  VigilProcess vigil(dir, "run", port, {{"API_TOKEN", kApiToken}});
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10);
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kApiToken}};
  // Ready once both services have a tick and the closed port's alert is open (alert 1), so
  // events, ticks, series and alerts have something to show.
  ASSERT_TRUE(eventually(
      [&] {
        const auto services = client.Get("/v1/services", auth);
        const auto alerts = client.Get("/v1/alerts?service_id=2", auth);
        if (!services || services->status != 200 || !alerts || alerts->status != 200) return false;
        // The parsed body is named: a range-for over a member of a temporary would read it after
        // the temporary is gone.
        const json listed = json::parse(services->body);
        for (const auto& service : listed["data"]["services"]["data"])
          if (service["last_tick_at"].is_null()) return false;
        return !json::parse(alerts->body)["data"]["alerts"].empty();
      },
      20s))
      << vigil.log();

  int calls = 0;
  for (const auto& example : of_kind("api")) {
    std::string token;
    if (const auto res = client.Get("/v1/services?kind=heartbeat", auth); res) {
      const auto heartbeats = json::parse(res->body)["data"]["services"]["data"];
      if (!heartbeats.empty()) {
        const auto one =
            client.Get("/v1/services/" + std::to_string(heartbeats[0]["id"].get<long>()), auth);
        if (one) token = json::parse(one->body)["data"]["service"]["push_token"];
      }
    }
    std::ofstream(dir.file("example.sh"), std::ios::binary)
        << "set -eu\n"
           "curl() { command curl -sS -o \"$BODY\" -w '%{http_code}\\n' \"$@\" >> \"$CODES\"; "
           "cat \"$BODY\"; }\n"
        << std::regex_replace(example.text, std::regex("localhost:9999"),
                              "127.0.0.1:" + std::to_string(port));
    std::filesystem::remove(dir.file("codes"));
    const auto result = run_command("cd " + dir.path() + " && API_TOKEN=" + kApiToken + " TOKEN='" +
                                    token + "' BODY=body CODES=codes sh example.sh 2>&1");
    EXPECT_EQ(result.exit_code, 0) << example.where << "\n" << example.text << result.output;
    std::istringstream codes(read_file(dir.file("codes")));
    std::string code;
    int answered = 0;
    while (codes >> code) {
      ++answered;
      EXPECT_TRUE(code.starts_with("2")) << example.where << ": HTTP " << code << "\n"
                                         << example.text << result.output;
    }
    // A call behind a condition (the next page, when there is one) may not run.
    EXPECT_GE(answered, 1) << example.where << "\n" << example.text << result.output;
    EXPECT_LE(answered, static_cast<int>(curl_calls(example.text).size())) << example.where;
    calls += answered;
  }
  EXPECT_GE(calls, 12);
  EXPECT_EQ(vigil.stop(), 0) << vigil.log();
}

}  // namespace
}  // namespace vigil::test
