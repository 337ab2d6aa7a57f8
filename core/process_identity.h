// Who this process is, and identifiers nobody else will pick: an alert's external reference
// (PagerDuty's dedup_key), a cluster member's incarnation.
#pragma once

#include <string>

namespace vigil {

// 128 bits from std::random_device as 32 lowercase hex digits. Any thread.
std::string random_id();

// This machine's host name (gethostname), spaces replaced by '_' so that it is one word;
// "localhost" when it has none. Any thread.
std::string host_name();

}  // namespace vigil
