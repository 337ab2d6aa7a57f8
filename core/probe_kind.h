// The probe kinds and the URL schemes that name them: the one table that config validation,
// the probe options' checks, the runner and `vigil probe` ask "what checks this URL?". What a
// kind is lives here, below config/; how it probes lives in runner/ (runner/probe_kinds.cpp
// maps each kind to its Probe). Adding a kind: a value of ProbeKind, its row in
// core/probe_kind.cpp, its file behind runner/probe.h's Probe and its row in
// runner/probe_kinds.cpp. Everything here is immutable and safe from any thread.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace vigil {

enum class ProbeKind { http, tcp };

struct ProbeKindInfo {
  ProbeKind kind;
  // The URL schemes this kind checks, without "://" ("http", "https"); unused slots are empty.
  std::array<std::string_view, 2> schemes;
  // Sends an HTTP request: method, headers, expected status, the HTTP and TLS options and every
  // condition apply. Otherwise only the max_response_ms condition does.
  bool http = false;
  // The URL is an address and nothing more (scheme://host:port, a port required).
  bool address_only = false;
  // Takes a conversation after connecting (the send and expect keys).
  bool conversation = false;
};

// Every kind, in the order messages list them.
std::span<const ProbeKindInfo> probe_kinds();

// The kind that checks `url` (by its scheme, matched exactly as written, lower case), or null
// when no kind has that scheme.
const ProbeKindInfo* probe_kind_for(std::string_view url);

// The scheme of `url` that probe_kind_for matched, with "://" ("tcp://"); empty when none did.
std::string_view probe_scheme_of(std::string_view url);

// "http://, https:// or tcp://": every scheme of every kind, for messages.
std::string probe_schemes_text();

// The schemes of the kinds with a conversation ("tcp://"), for messages.
std::string conversation_schemes_text();

}  // namespace vigil
