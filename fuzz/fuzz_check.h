// What a fuzz target does when a property fails: print why and abort, so that libFuzzer (or the
// replay driver) reports the input as a crash and keeps it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(condition, message)                                   \
  do {                                                                   \
    if (!(condition)) {                                                  \
      std::fprintf(stderr, "fuzz property failed: %s: %s\n", #condition, \
                   std::string(message).c_str());                        \
      std::abort();                                                      \
    }                                                                    \
  } while (false)
