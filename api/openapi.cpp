#include "api/openapi.h"

#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/html.h"

namespace vigil {
namespace {

using html::append_escaped;
using nlohmann::json;

constexpr std::array<const char*, 5> kMethods = {"get", "post", "patch", "put", "delete"};

// "#/components/parameters/Limit" resolved within `document`, or the object itself.
const json& resolve(const json& document, const json& node) {
  if (!node.is_object() || !node.contains("$ref") || !node["$ref"].is_string()) return node;
  const std::string ref = node["$ref"].get<std::string>();
  if (!ref.starts_with("#/")) return node;
  try {
    const json& target = document.at(json::json_pointer(ref.substr(1)));
    return target;
  } catch (const json::exception&) {
    return node;
  }
}

std::string text_of(const json& node, const char* key) {
  if (!node.is_object() || !node.contains(key)) return {};
  const json& value = node[key];
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// "integer, 1..1000" / "string: up | down".
std::string schema_summary(const json& schema) {
  if (!schema.is_object()) return {};
  std::string out = text_of(schema, "type");
  if (schema.contains("enum")) {
    out += ": ";
    bool first = true;
    for (const auto& value : schema["enum"]) {
      if (!first) out += " | ";
      first = false;
      out += value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  if (schema.contains("minimum") || schema.contains("maximum"))
    out += ", " + text_of(schema, "minimum") + ".." + text_of(schema, "maximum");
  return out;
}

void append_operation(std::string& out, const json& document, const std::string& path,
                      const std::string& method, const json& operation) {
  std::string anchor = method + "-" + path;
  for (char& c : anchor)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
  out += "<section class=\"op\" id=\"";
  append_escaped(out, anchor);
  out += "\"><h3><span class=\"m m-";
  out += method;
  out += "\">";
  for (char c : method) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  out += "</span> <code>";
  append_escaped(out, path);
  out += "</code> ";
  append_escaped(out, text_of(operation, "summary"));
  out += "</h3><p>";
  append_escaped(out, text_of(operation, "description"));
  out += "</p>";
  if (operation.contains("security") && operation["security"].is_array()) {
    // [{"readToken": []}, {}]: the token is needed only when it is configured.
    std::string schemes;
    bool optional = false;
    for (const auto& requirement : operation["security"]) {
      if (!requirement.is_object()) continue;
      if (requirement.empty()) optional = true;
      for (const auto& [name, unused] : requirement.items())
        schemes += (schemes.empty() ? "" : ", ") + name;
    }
    if (!schemes.empty()) {
      out += "<p class=\"auth\">Bearer token: <code>";
      append_escaped(out, schemes);
      out += optional ? "</code>, when it is set (see Access).</p>" : "</code> (see Access).</p>";
    }
  }
  const json* parameters = operation.contains("parameters") ? &operation["parameters"] : nullptr;
  if (parameters && parameters->is_array() && !parameters->empty()) {
    out +=
        "<table><thead><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th>"
        "</tr></thead><tbody>";
    for (const auto& raw : *parameters) {
      const json& p = resolve(document, raw);
      out += "<tr><td><code>";
      append_escaped(out, text_of(p, "name"));
      out += "</code>";
      if (p.value("required", false)) out += " <em>required</em>";
      out += "</td><td>";
      append_escaped(out, text_of(p, "in"));
      out += "</td><td>";
      append_escaped(out, schema_summary(p.contains("schema") ? p["schema"] : json()));
      out += "</td><td>";
      append_escaped(out, text_of(p, "description"));
      out += "</td></tr>";
    }
    out += "</tbody></table>";
  }
  if (operation.contains("responses") && operation["responses"].is_object()) {
    out += "<dl class=\"responses\">";
    for (const auto& [code, raw] : operation["responses"].items()) {
      const json& response = resolve(document, raw);
      out += "<dt>";
      append_escaped(out, code);
      out += "</dt><dd>";
      append_escaped(out, text_of(response, "description"));
      if (response.contains("content") && response["content"].is_object())
        for (const auto& [type, unused] : response["content"].items()) {
          out += " <code>";
          append_escaped(out, type);
          out += "</code>";
        }
      out += "</dd>";
    }
    out += "</dl>";
  }
  out += "</section>\n";
}

}  // namespace

std::string render_docs_html(std::string_view document_json) {
  const json document = json::parse(document_json, nullptr, false);
  if (!document.is_object() || !document.contains("paths") || !document["paths"].is_object())
    throw std::invalid_argument("openapi: not an OpenAPI object with paths");
  const json& info = document.contains("info") ? document["info"] : json::object();
  const std::string version = text_of(info, "version");
  const std::string title = text_of(info, "title") + (version.empty() ? "" : " " + version);

  std::string out;
  out.reserve(64 * 1024);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>";
  append_escaped(out, title);
  out +=
      "</title><style>"
      "body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:1em;"
      "color:#222}code{font-family:ui-monospace,monospace}"
      "h3{font-size:1.05em;margin:0 0 .3em}.op{border:1px solid #ddd;border-radius:6px;"
      "padding:.7em 1em;margin:.8em 0}.m{display:inline-block;min-width:4.2em;"
      "text-align:center;border-radius:4px;color:#fff;font-size:.85em;padding:0 .3em}"
      ".m-get{background:#2b7bb9}.m-post{background:#2e9e4f}.m-patch{background:#c98a00}"
      ".m-put{background:#8a5ec9}.m-delete{background:#c0392b}table{border-collapse:collapse;"
      "width:100%;font-size:.92em}td,th{border-top:1px solid #eee;text-align:left;"
      "padding:.2em .4em;vertical-align:top}dl.responses{display:grid;"
      "grid-template-columns:4em 1fr;margin:.4em 0}dt{font-weight:600}dd{margin:0}"
      ".auth{color:#8a5a00;font-size:.9em}nav a{margin-right:.8em}"
      "</style></head><body><h1>";
  append_escaped(out, title);
  out += "</h1><p>";
  append_escaped(out, text_of(info, "description"));
  out +=
      "</p><p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>."
      "</p>\n";
  if (document.contains("components") && document["components"].contains("securitySchemes")) {
    out += "<h2 id=\"access\">Access</h2><ul>";
    for (const auto& [name, scheme] : document["components"]["securitySchemes"].items()) {
      out += "<li><code>";
      append_escaped(out, name);
      out += "</code>: ";
      append_escaped(out, text_of(scheme, "description"));
      out += "</li>";
    }
    out += "</ul>\n";
  }
  // Endpoints by tag, in the document's tag order; untagged ones last.
  std::vector<std::string> tags;
  if (document.contains("tags") && document["tags"].is_array())
    for (const auto& tag : document["tags"]) tags.push_back(text_of(tag, "name"));
  tags.emplace_back();  // "": the untagged ones
  const auto tagged = [](const json& operation, const std::string& tag) {
    if (!operation.contains("tags") || !operation["tags"].is_array() || operation["tags"].empty())
      return tag.empty();
    return !tag.empty() && operation["tags"][0] == tag;
  };
  for (const std::string& tag : tags) {
    std::string section;
    for (const auto& [path, item] : document["paths"].items()) {
      if (!item.is_object()) continue;
      for (const char* method : kMethods)
        if (item.contains(method) && tagged(item[method], tag))
          append_operation(section, document, path, method, item[method]);
    }
    if (section.empty()) continue;
    out += "<h2>";
    append_escaped(out, tag.empty() ? std::string("other") : tag);
    out += "</h2>\n" + section;
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace vigil
