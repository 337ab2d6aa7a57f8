// The HTTP API end to end on arbitrary requests: the input is the raw bytes a client sends
// (request line, query parameters, headers, body, possibly several pipelined requests). They go
// over a real loopback connection to a real ApiServer (as under `vigil api`) reading and writing
// a real SQLite database seeded with services, ticks and events, so every route's parameter
// parsing, body handling, store access and JSON rendering is exercised, with httplib's own
// request parser in front. The server must never crash or trip a sanitizer, never answer 500
// (the store is healthy, so a 500 is an unhandled exception: bad input must be a 4xx), and a
// JSON answer must be a valid envelope carrying its own status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/server.h"
#include "config/config.h"
#include "core/logging.h"
#include "fuzz_check.h"
#include "storage/sqlite/sqlite_database.h"
#include "storage/store.h"

namespace {

using namespace vigil;
using namespace std::chrono_literals;

// A store with three services (one up, one down with two events, one heartbeat) and an API
// server on an ephemeral port, made once per process and kept to its end.
struct Fixture {
  std::string dir;
  std::unique_ptr<Store> store;
  prometheus::Registry registry;
  std::unique_ptr<ApiServer> server;
  int port = 0;

  Fixture() {
    set_log_level(LogLevel::error);
    std::string templ = (std::filesystem::temp_directory_path() / "vigil-fuzz-XXXXXX").string();
    FUZZ_CHECK(::mkdtemp(templ.data()) != nullptr, "mkdtemp");
    dir = templ;
    store = open_sqlite_store(dir + "/fuzz.db");
    const Settings settings;
    store->sync_services(parse_services(R"([
          {"name": "web", "url": "http://127.0.0.1:1/", "team": "core", "tags": ["prod"]},
          {"name": "db", "url": "https://127.0.0.1:2/health", "interval_seconds": 5},
          {"name": "nightly", "kind": "heartbeat", "interval_seconds": 3600}
        ])",
                                        "seed.json", settings),
                         now_ms());
    ServiceId web_id = 0, db_id = 0;
    for (const Service& service : store->active_services()) {
      if (service.spec.name == "web") web_id = service.id;
      if (service.spec.name == "db") db_id = service.id;
    }
    FUZZ_CHECK(web_id > 0 && db_id > 0, "seed services");
    // 20 ticks each: web always up, db up, then down for ten ticks, then up again.
    const TimePoint t0 = now_ms() - 60s;
    std::vector<TickRecord> batch;
    Metric web_metric, db_metric;
    for (int i = 0; i < 20; ++i) {
      const bool db_up = i < 5 || i >= 15;
      for (const ServiceId id : {web_id, db_id}) {
        const bool up = id == web_id || db_up;
        TickRecord record;
        record.tick.service_id = id;
        record.tick.ts = t0 + Millis(i * 1000);
        record.tick.up = up;
        if (up) record.tick.status_code = 200;
        record.tick.response_ms = id == web_id ? 3.5 : 12.0;
        record.tick.error = up ? "" : "connection refused";
        record.tick.region = "local";
        Metric& metric = id == web_id ? web_metric : db_metric;
        metric.add(up, record.tick.response_ms);
        record.metric_after = metric;
        if (i == 0 || (id == db_id && (i == 5 || i == 15)))
          record.opens_event = up ? EventKind::uptime : EventKind::downtime;
        batch.push_back(record);
      }
    }
    store->apply(batch);
    ApiOptions options;
    server = std::make_unique<ApiServer>(
        *store, registry, [] { return HealthReport{}; }, std::move(options));
    port = server->start("127.0.0.1", 0);
  }
  ~Fixture() {
    server.reset();
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

// Where the first HTTP message in `bytes` ends (head, blank line and a Content-Length body, none
// for a HEAD answer when `head_only`), or npos when it is not all there. Chunked bodies and
// unreadable lengths count as not all there: the caller then falls back to half-closing.
std::size_t first_message_end(std::string_view bytes, bool head_only) {
  const auto head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return std::string_view::npos;
  std::string head(bytes.substr(0, head_end));
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head.find("\r\ntransfer-encoding:") != std::string::npos) return std::string_view::npos;
  std::size_t length = 0;
  if (const auto at = head.find("\r\ncontent-length:"); at != std::string::npos && !head_only) {
    std::size_t i = at + 17;
    while (i < head.size() && head[i] == ' ') ++i;
    const std::size_t digits = i;
    while (i < head.size() && std::isdigit(static_cast<unsigned char>(head[i])) && i - digits < 9)
      length = length * 10 + static_cast<std::size_t>(head[i++] - '0');
    if (i == digits || (i < head.size() && head[i] != '\r')) return std::string_view::npos;
  }
  const std::size_t end = head_end + 4 + length;
  return end <= bytes.size() ? end : std::string_view::npos;
}

// The exchange of one input. httplib 0.11.4 treats a client that has half-closed as gone and
// sends it nothing (or only part of its answer), so a whole request is sent without a
// half-close and its answer read in full; only then, or at once when the request is not whole
// (the server would wait for the rest until its 5 s read timeout), is the connection
// half-closed. Reading then goes on until the server closes: by then it has handled (and
// counted) every request of the input.
struct Exchange {
  std::string response;
  bool first_answer_complete = false;  // response starts with the whole first answer
};

Exchange exchange(int port, std::string_view request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
  const bool whole = first_message_end(request, false) != std::string_view::npos;
  const bool head_only = request.starts_with("HEAD ");
  for (std::string_view rest = request; !rest.empty();) {
    const ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (413, a malformed head): fine
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  bool half_closed = false;
  if (!whole) {
    ::shutdown(fd, SHUT_WR);
    half_closed = true;
  }
  Exchange out;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto waited = std::chrono::steady_clock::now() - start;
    // A request this harness took for whole that the server still waits on (or a slow answer,
    // which then goes unchecked): stop waiting.
    if (!half_closed && waited > 300ms) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    if (waited > 8s) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buffer[16384];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;  // closed, or reset after a request the server would not read to its end
    out.response.append(buffer, static_cast<std::size_t>(n));
    if (!out.first_answer_complete && !half_closed &&
        first_message_end(out.response, head_only) != std::string_view::npos) {
      out.first_answer_complete = true;
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
  }
  ::close(fd);
  return out;
}

// Answers with status 500 the server has counted so far (vigil_api_requests_total{code="500"}).
double server_errors(prometheus::Registry& registry) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != "vigil_api_requests_total") continue;
    for (const auto& metric : family.metric)
      for (const auto& label : metric.label)
        if (label.name == "code" && label.value == "500") total += metric.counter.value;
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* fixture = new Fixture();  // lives to the end of the process, on purpose
  const std::string_view request(reinterpret_cast<const char*>(data), size);
  const auto [response, complete] = exchange(fixture->port, request);

  // Every request of the input, answered or not (see exchange), was counted by now.
  static double errors_before = 0;
  const double errors = server_errors(fixture->registry);
  FUZZ_CHECK(errors == errors_before, "the server answered 500 (its log line is above) to:\n" +
                                          std::string(request.substr(0, 600)));
  errors_before = errors;

  // The first answer, when it arrived whole: a JSON one must be an envelope with its status.
  // An answer to HEAD has no body, also when the request line is nothing but "HEAD" (a 400).
  const std::string_view method = request.substr(0, request.find_first_of(" \r\n"));
  if (!complete || !response.starts_with("HTTP/1.1 ") || method == "HEAD") return 0;
  const int status = std::stoi(response.substr(9, 3));
  const auto head_end = response.find("\r\n\r\n");
  const std::string head = response.substr(0, head_end);
  if (head.find("\r\nContent-Type: application/json") == std::string::npos) return 0;
  const std::string body =
      response.substr(head_end + 4, first_message_end(response, false) - head_end - 4);
  nlohmann::json envelope;
  try {
    envelope = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    FUZZ_CHECK(false, std::string("a JSON answer that is not JSON: ") + e.what() + "\n" + head);
  }
  FUZZ_CHECK(envelope.is_object() && envelope.contains("status") && envelope["status"] == status,
             "envelope status differs from the HTTP status: " + body.substr(0, 300));
  return 0;
}
