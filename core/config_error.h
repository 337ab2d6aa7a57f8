// The one error type for bad input from a file, a variable or a request body: its message names
// where the value came from, the field and the bad value. `vigil` prints it and exits with code 2;
// the API answers 400 with it.
#pragma once

#include <stdexcept>

namespace vigil {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vigil
