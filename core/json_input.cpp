#include "core/json_input.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "core/config_error.h"
#include "core/text.h"

namespace vigil {
namespace {

using nlohmann::json;

// A key or text as the user wrote it, quoted, for messages (invalid UTF-8 replaced, not thrown).
std::string quoted_key(const std::string& text) {
  std::string shown = json(text).dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 80) shown = shown.substr(0, 76) + "...\"";
  return shown;
}

// One open array or object while parsing: where the parser is inside it, and an object's keys.
struct Frame {
  bool array = false;
  std::size_t index = 0;  // array: the element being read
  std::string key;        // object: the key being read
  std::set<std::string> keys;
};

// The path of the innermost open container, as a.b[2], from the frames around it.
std::string path_of(const std::vector<Frame>& frames, const std::string& root_array_name) {
  std::string path;
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
    const Frame& frame = frames[i];
    if (frame.array) {
      if (i == 0) path += root_array_name;
      path += "[" + std::to_string(frame.index) + "]";
    } else {
      if (!path.empty()) path += '.';
      path += frame.key;
    }
  }
  return path;
}

}  // namespace

json parse_json_input(std::string_view text, const std::string& where,
                      const std::string& root_array_name) {
  std::vector<Frame> frames;
  // Called by nlohmann for every token; throwing stops the parse at once, before a deep
  // document is built.
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (frames.size() >= kMaxJsonDepth)
          throw ConfigError(where + ": nested deeper than " + std::to_string(kMaxJsonDepth) +
                            " levels of arrays and objects");
        frames.push_back({event == json::parse_event_t::array_start, 0, {}, {}});
        break;
      case json::parse_event_t::key: {
        Frame& frame = frames.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) {
          const std::string at = path_of(frames, root_array_name);
          throw ConfigError(where + ": duplicate key " + quoted_key(frame.key) +
                            (at.empty() ? "" : " at " + at));
        }
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames.pop_back();
        if (!frames.empty() && frames.back().array) ++frames.back().index;
        break;
      case json::parse_event_t::value:
        if (!frames.empty() && frames.back().array) ++frames.back().index;
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e400
    throw ConfigError(where + ": not valid JSON: " + e.what());
  }
}

std::string shown(const json& value) {
  return shortened(value.dump(-1, ' ', false, json::error_handler_t::replace), 80);
}

std::string read_config_file(const std::string& path, const std::string& what) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw ConfigError(path + ": " + what + " is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read " + what);
  // Read in chunks up to one byte past the bound: a regular file, a pipe or an endless device
  // alike stop there.
  std::string text;
  char chunk[64 * 1024];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes)
      throw ConfigError(path + ": " + what + " is larger than " +
                        std::to_string(kMaxConfigFileBytes / (1024 * 1024)) + " MiB, the limit");
  }
  if (in.bad()) throw ConfigError(path + ": cannot read " + what);
  return text;
}

}  // namespace vigil
