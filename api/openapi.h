// The API's OpenAPI 3 document (api/openapi.json, compiled in by CMake) and the readable /docs
// page vigil renders from it. Any thread.
#pragma once

#include <string>
#include <string_view>

namespace vigil {

// The text of api/openapi.json as built into this binary.
std::string_view openapi_document();

// A self-contained HTML page (inline CSS, no scripts, no external assets) listing every path and
// method of `document_json` with its summary, description, parameters and responses. Throws
// std::invalid_argument when the text is not an OpenAPI object with "paths".
std::string render_docs_html(std::string_view document_json);

}  // namespace vigil
