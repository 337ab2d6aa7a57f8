#include "api/push_client.h"

#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "core/text.h"
#include "core/url_redaction.h"

namespace vigil {
namespace {

constexpr std::size_t kMaxMessage = 1024;  // what the push route accepts
constexpr time_t kTimeoutSeconds = 10;
constexpr int kAttempts = 2;

struct SplitUrl {
  std::string origin;  // scheme://host:port, without userinfo
  std::string path;    // /v1/push/<token>
  std::string query;   // "" or "?..."
  std::optional<std::pair<std::string, std::string>> basic_auth;  // from user:password@
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding of a userinfo part ("p%40ss" is "p@ss").
std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int hi = text[i] == '%' && i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(text[i + 2]) : -1;
    if (lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::optional<SplitUrl> split_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  const auto path_start = url.find('/', scheme_end + 3);
  if (path_start == std::string::npos || path_start == scheme_end + 3) return std::nullopt;
  SplitUrl out;
  out.origin = url.substr(0, path_start);
  // httplib takes no userinfo in the origin: it becomes Basic credentials.
  if (const auto at = out.origin.rfind('@'); at != std::string::npos) {
    const std::string userinfo = out.origin.substr(scheme_end + 3, at - scheme_end - 3);
    const auto colon = userinfo.find(':');
    out.basic_auth.emplace(
        percent_decoded(userinfo.substr(0, colon)),
        colon == std::string::npos ? std::string() : percent_decoded(userinfo.substr(colon + 1)));
    out.origin.erase(scheme_end + 3, at - scheme_end - 2);
  }
  const auto query_start = url.find('?', path_start);
  out.path = url.substr(path_start, query_start - path_start);
  if (query_start != std::string::npos) out.query = url.substr(query_start);
  while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  return out;
}

std::string form_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct Outcome {
  bool ran = false;
  int exit_code = 0;  // 128 + signal when killed
  std::string description;
  double duration_ms = 0;
};

Outcome run_command(const std::vector<std::string>& command) {
  Outcome outcome;
  outcome.ran = true;
  const auto started = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    outcome.exit_code = 127;
    outcome.description = "could not start the command";
  } else if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::perror(("vigil beat: " + command.front()).c_str());
    ::_exit(127);
  } else {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
      outcome.exit_code = 128 + WTERMSIG(status);
      outcome.description = "killed by signal " + std::to_string(WTERMSIG(status));
    } else {
      outcome.exit_code = WEXITSTATUS(status);
      outcome.description = "exit code " + std::to_string(outcome.exit_code);
    }
  }
  outcome.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return outcome;
}

}  // namespace

BeatOptions parse_beat_arguments(const std::vector<std::string>& args) {
  BeatOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      options.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      if (options.command.empty()) throw UsageError("nothing to run after \"--\"");
      break;
    }
    if (arg == "--fail") {
      options.fail = true;
    } else if (arg == "--msg") {
      if (i + 1 >= args.size()) throw UsageError("--msg needs a text");
      options.message = args[++i];
    } else if (arg.starts_with("--") || (arg.starts_with("-") && !options.target.empty())) {
      // A single '-' first may still be a token (base64url): older ones can start with it.
      throw UsageError("unknown option \"" + arg + "\"");
    } else if (options.target.empty()) {
      options.target = arg;
    } else {
      throw UsageError("unexpected argument \"" + redact_url(arg, UrlAudience::reader) +
                       "\" (put the command after \"--\")");
    }
  }
  if (options.target.empty()) throw UsageError("missing the push URL or token");
  if (options.fail && !options.command.empty())
    throw UsageError("--fail reports a failure without running a command; drop one of them");
  return options;
}

std::string push_url(const std::string& target, const Settings& settings) {
  if (target.starts_with("http://") || target.starts_with("https://")) return target;
  const bool wildcard = settings.api_host.empty() || settings.api_host == "0.0.0.0" ||
                        settings.api_host == "::" || settings.api_host == "[::]";
  std::string host = wildcard ? "127.0.0.1" : settings.api_host;
  if (host.find(':') != std::string::npos && !host.starts_with("[")) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(settings.api_port) + "/v1/push/" + target;
}

int run_beat(const BeatOptions& options, const std::string& url) {
  const auto split = split_url(url);
  if (!split) {
    std::cerr << "vigil beat: not a push URL (expected http(s)://host[:port]/v1/push/<token>)\n";
    return 2;
  }

  Outcome outcome;
  if (!options.command.empty()) outcome = run_command(options.command);
  const bool failed = options.fail || outcome.exit_code != 0;

  std::string message = options.message;
  if (outcome.ran)
    message = message.empty() ? outcome.description : message + " (" + outcome.description + ")";
  message = clean_text(message, kMaxMessage);  // never cut inside a character
  std::string body = "msg=" + form_encode(message);
  if (outcome.ran) body += "&duration_ms=" + std::to_string(outcome.duration_ms);

  httplib::Client client(split->origin);
  if (split->basic_auth) client.set_basic_auth(split->basic_auth->first, split->basic_auth->second);
  client.set_connection_timeout(kTimeoutSeconds);
  client.set_read_timeout(kTimeoutSeconds);
  client.set_write_timeout(kTimeoutSeconds);
  const std::string path = split->path + (failed ? "/fail" : "") + split->query;
  // The origin only, never the path: the token in it is a secret; and the origin as redact_url
  // shows it, without a password.
  std::string problem;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    auto result = client.Post(path.c_str(), body, "application/x-www-form-urlencoded");
    if (result && result->status == 200) {
      problem.clear();
      break;
    }
    problem = result ? "HTTP " + std::to_string(result->status) +
                           (result->status == 404 ? " (unknown push token)" : "")
                     : httplib::to_string(result.error());
    // A 4xx will not change on a retry; a network error or a 5xx might.
    if (result && result->status >= 400 && result->status < 500) break;
    if (attempt < kAttempts) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!problem.empty())
    std::cerr << "vigil beat: could not report to "
              << redact_url(url.substr(0, url.find('/', url.find("://") + 3)), UrlAudience::reader)
              << ": " << problem << "\n";

  if (outcome.exit_code != 0) return outcome.exit_code;
  return problem.empty() ? 0 : 1;
}

}  // namespace vigil
