// RAII owners for libcurl handles, private to runner/. Every CURL*, CURLM*, curl_slist* and CURLU*
// the runner creates lives in one of these, so no error path can leak a handle.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace vigil {

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;
using CurlStringPtr = std::unique_ptr<char, CurlStringDeleter>;

// Appends `line` to `list` (curl_slist_append: the list keeps its head, or gets one when empty).
// Returns false, `list` unchanged, when curl cannot allocate the line.
inline bool append_line(CurlSlistPtr& list, const std::string& line) {
  curl_slist* head = curl_slist_append(list.get(), line.c_str());
  if (!head) return false;
  if (!list) list.reset(head);
  return true;
}

// curl_global_init once per process, before the first handle. libcurl 7.84+ makes it thread-safe,
// but calling it exactly once keeps us correct on older builds too. Throws std::runtime_error
// when libcurl cannot initialise.
void ensure_curl_global_init();

// Sets a string option of `easy`. Throws std::invalid_argument naming `what` when curl refuses
// the value (e.g. longer than its 8 MB input limit): a probe without its URL would not measure
// what was asked for.
inline void set_text_option(CURL* easy, CURLoption option, const std::string& value,
                            const char* what) {
  const CURLcode set = curl_easy_setopt(easy, option, value.c_str());
  if (set != CURLE_OK)
    throw std::invalid_argument(std::string(what) + " refused by curl (" +
                                std::to_string(value.size()) +
                                " bytes): " + curl_easy_strerror(set));
}

}  // namespace vigil
