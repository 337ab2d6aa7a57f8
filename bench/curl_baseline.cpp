// The bare libcurl multi loop vigil is measured against: one thread, a fresh connection per
// probe, nothing but the transfer (no scheduling, state, metrics or storage). Its CPU-ms per
// probe is the floor a probe engine built on libcurl can reach on this machine.
//
//   vigil_bench_curl --seconds S --max-probes N --concurrency C URL [URL...]
//
// Keeps C probes in flight, rotating over the URLs, until S seconds or N probes have passed,
// then prints one JSON object: probes, ok (HTTP 2xx/3xx), seconds, cpu_ms (user + system of
// this process, from getrusage), cpu_ms_per_probe and max_rss_mb.
#include <curl/curl.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;

double cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto ms = [](const timeval& t) { return double(t.tv_sec) * 1e3 + double(t.tv_usec) / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double max_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KB on Linux
}

std::size_t discard(char*, std::size_t size, std::size_t count, void*) { return size * count; }

// A new handle per probe, as vigil makes one: fresh connection, closed afterwards.
EasyPtr make_probe(const std::string& url) {
  EasyPtr easy(curl_easy_init());
  if (!easy) return easy;
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &discard);
  return easy;
}

int usage() {
  std::fprintf(stderr,
               "usage: vigil_bench_curl --seconds S --max-probes N --concurrency C URL...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  long max_probes = 100'000;
  long concurrency = 64;
  std::vector<std::string> urls;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--seconds" && has_value) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--max-probes" && has_value) {
      max_probes = std::atol(argv[++i]);
    } else if (arg == "--concurrency" && has_value) {
      concurrency = std::atol(argv[++i]);
    } else if (arg.starts_with("--")) {
      return usage();
    } else {
      urls.emplace_back(arg);
    }
  }
  if (urls.empty() || seconds <= 0 || max_probes <= 0 || concurrency <= 0) return usage();

  curl_global_init(CURL_GLOBAL_DEFAULT);
  MultiPtr multi(curl_multi_init());
  if (!multi) return 1;

  std::vector<EasyPtr> slots(static_cast<std::size_t>(concurrency));
  long started = 0;
  long finished = 0;
  long ok = 0;
  const auto begin = std::chrono::steady_clock::now();
  const auto end = begin + std::chrono::duration<double>(seconds);
  const double cpu_begin = cpu_ms();

  const auto start_in = [&](std::size_t slot) {
    if (started >= max_probes || std::chrono::steady_clock::now() >= end) return;
    slots[slot] = make_probe(urls[static_cast<std::size_t>(started) % urls.size()]);
    if (!slots[slot]) return;
    // The handle knows its slot: slots is never resized, so the address stays.
    curl_easy_setopt(slots[slot].get(), CURLOPT_PRIVATE, &slots[slot]);
    curl_multi_add_handle(multi.get(), slots[slot].get());
    ++started;
  };
  for (std::size_t slot = 0; slot < slots.size(); ++slot) start_in(slot);

  int running = 1;
  while (finished < started) {
    curl_multi_perform(multi.get(), &running);
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi.get(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* easy = message->easy_handle;
      const CURLcode code = message->data.result;
      char* owner = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &owner);
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      if (code == CURLE_OK && status >= 200 && status < 400) ++ok;
      ++finished;
      curl_multi_remove_handle(multi.get(), easy);
      const auto slot =
          static_cast<std::size_t>(static_cast<EasyPtr*>(static_cast<void*>(owner)) - slots.data());
      slots[slot].reset();
      start_in(slot);
    }
    if (finished < started) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  const double cpu = cpu_ms() - cpu_begin;
  std::printf(
      "{\"probes\": %ld, \"ok\": %ld, \"seconds\": %.3f, \"cpu_ms\": %.1f, "
      "\"cpu_ms_per_probe\": %.4f, \"max_rss_mb\": %.1f}\n",
      finished, ok, elapsed, cpu, finished > 0 ? cpu / double(finished) : 0.0, max_rss_mb());
  multi.reset();
  curl_global_cleanup();
  return 0;
}
