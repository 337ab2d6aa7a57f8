// A strict well-formedness parser for the HTML and SVG vigil renders, so tests can both
// reject broken markup and read figures out of it. Strict on purpose: every element closed in
// order (HTML void elements excepted), attribute values quoted and not repeated, only known
// entities, no stray '<' or '&', raw text only inside <script> and <style>.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigil::test {

struct MarkupNode {
  std::string name;                                             // element name; "" for the document
  std::vector<std::pair<std::string, std::string>> attributes;  // values entity-decoded
  std::vector<MarkupNode> children;
  std::string text;  // decoded text directly inside this element

  // The attribute's value, or nullptr.
  const std::string* attribute(std::string_view attribute_name) const;
  // The text of this element and all its descendants, in document order.
  std::string all_text() const;
  // The first descendant (or this) whose id attribute is `id`, or nullptr.
  const MarkupNode* by_id(std::string_view id) const;
  // Every descendant element named `element_name` whose `attribute_name` (if given) equals
  // `value`, in document order.
  std::vector<const MarkupNode*> all(std::string_view element_name,
                                     std::string_view attribute_name = {},
                                     std::string_view value = {}) const;
};

enum class MarkupMode { html, xml };

// Parses `text`; throws std::runtime_error naming the byte offset and the problem. In xml mode
// the document must hold exactly one root element.
MarkupNode parse_markup(std::string_view text, MarkupMode mode);

}  // namespace vigil::test
