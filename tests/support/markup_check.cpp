#include "support/markup_check.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <stdexcept>

namespace vigil::test {
namespace {

constexpr std::array<std::string_view, 14> kVoidElements = {
    "area",  "base", "br",   "col",    "embed", "hr",  "img",
    "input", "link", "meta", "source", "track", "wbr", "param"};

class Parser {
 public:
  Parser(std::string_view text, MarkupMode mode) : text_(text), mode_(mode) {}

  MarkupNode document() {
    MarkupNode root;
    skip_prolog();
    parse_children(root, "");
    if (pos_ != text_.size()) fail("unexpected content after the document");
    if (mode_ == MarkupMode::xml) {
      const auto elements = std::count_if(root.children.begin(), root.children.end(),
                                          [](const MarkupNode&) { return true; });
      if (elements != 1) fail("an XML document needs exactly one root element");
      for (char c : root.text)
        if (!std::isspace(static_cast<unsigned char>(c))) fail("text outside the root element");
    }
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("markup at byte " + std::to_string(pos_) + ": " + what + " near \"" +
                             std::string(text_.substr(pos_ > 20 ? pos_ - 20 : 0, 60)) + "\"");
  }

  bool starts(std::string_view s) const { return text_.substr(pos_).starts_with(s); }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  void skip_prolog() {
    skip_space();
    if (starts("<?xml")) {
      const auto end = text_.find("?>", pos_);
      if (end == std::string_view::npos) fail("unterminated XML declaration");
      pos_ = end + 2;
      skip_space();
    }
    if (starts("<!DOCTYPE") || starts("<!doctype")) {
      if (mode_ != MarkupMode::html) fail("DOCTYPE in an XML document");
      const auto end = text_.find('>', pos_);
      if (end == std::string_view::npos) fail("unterminated DOCTYPE");
      pos_ = end + 1;
    }
  }

  std::string name() {
    const std::size_t start = pos_;
    while (pos_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (std::isalnum(c) || c == '-' || c == '_' || c == ':' || c == '.')
        ++pos_;
      else
        break;
    }
    if (pos_ == start || !std::isalpha(static_cast<unsigned char>(text_[start])))
      fail("expected a name");
    return std::string(text_.substr(start, pos_ - start));
  }

  // Decodes an entity at pos_ ('&'), appending it to out.
  void entity(std::string& out) {
    const auto end = text_.find(';', pos_);
    if (end == std::string_view::npos || end - pos_ > 10) fail("bare '&' (not an entity)");
    const std::string_view body = text_.substr(pos_ + 1, end - pos_ - 1);
    std::uint32_t code = 0;
    if (body == "amp")
      code = '&';
    else if (body == "lt")
      code = '<';
    else if (body == "gt")
      code = '>';
    else if (body == "quot")
      code = '"';
    else if (body == "apos")
      code = '\'';
    else if (body.size() > 1 && body[0] == '#') {
      const bool hex = body[1] == 'x' || body[1] == 'X';
      const std::string_view digits = body.substr(hex ? 2 : 1);
      if (digits.empty()) fail("empty character reference");
      for (char c : digits) {
        if (!(hex ? std::isxdigit(static_cast<unsigned char>(c))
                  : std::isdigit(static_cast<unsigned char>(c))))
          fail("bad character reference");
        code = code * (hex ? 16 : 10) +
               std::uint32_t(std::isdigit(static_cast<unsigned char>(c))
                                 ? c - '0'
                                 : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
        if (code > 0x10FFFF) fail("character reference out of range");
      }
    } else {
      fail("unknown entity &" + std::string(body) + ";");
    }
    // UTF-8 encode.
    if (code < 0x80) {
      out += char(code);
    } else if (code < 0x800) {
      out += char(0xC0 | (code >> 6));
      out += char(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += char(0xE0 | (code >> 12));
      out += char(0x80 | ((code >> 6) & 0x3F));
      out += char(0x80 | (code & 0x3F));
    } else {
      out += char(0xF0 | (code >> 18));
      out += char(0x80 | ((code >> 12) & 0x3F));
      out += char(0x80 | ((code >> 6) & 0x3F));
      out += char(0x80 | (code & 0x3F));
    }
    pos_ = end + 1;
  }

  bool is_void(const std::string& element) const {
    return mode_ == MarkupMode::html &&
           std::find(kVoidElements.begin(), kVoidElements.end(), element) != kVoidElements.end();
  }

  // Parses content until "</closing>" (consumed) or, for the document, the end.
  void parse_children(MarkupNode& parent, const std::string& closing) {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '&') {
        entity(parent.text);
      } else if (c == '>') {
        fail("stray '>' in text");
      } else if (c != '<') {
        parent.text += c;
        ++pos_;
      } else if (starts("<!--")) {
        const auto end = text_.find("-->", pos_ + 4);
        if (end == std::string_view::npos) fail("unterminated comment");
        pos_ = end + 3;
      } else if (starts("</")) {
        pos_ += 2;
        const std::string closed = name();
        skip_space();
        if (!starts(">")) fail("expected '>' after </" + closed);
        ++pos_;
        if (closed != closing)
          fail("</" + closed + "> closes <" + (closing.empty() ? "nothing" : closing) + ">");
        return;
      } else {
        parent.children.push_back(element());
      }
    }
    if (!closing.empty()) fail("<" + closing + "> is never closed");
  }

  MarkupNode element() {
    ++pos_;  // '<'
    MarkupNode node;
    node.name = name();
    for (;;) {
      const std::size_t before = pos_;
      skip_space();
      if (starts("/>")) {
        pos_ += 2;
        return node;
      }
      if (starts(">")) {
        ++pos_;
        break;
      }
      if (pos_ == before) fail("expected whitespace before an attribute");
      const std::string attribute = name();
      for (const auto& [existing, unused] : node.attributes)
        if (existing == attribute) fail("attribute " + attribute + " repeated");
      skip_space();
      if (!starts("=")) fail("attribute " + attribute + " has no value");
      ++pos_;
      skip_space();
      if (pos_ >= text_.size() || (text_[pos_] != '"' && text_[pos_] != '\''))
        fail("attribute " + attribute + " is not quoted");
      const char quote = text_[pos_++];
      std::string value;
      while (pos_ < text_.size() && text_[pos_] != quote) {
        if (text_[pos_] == '<') fail("'<' in an attribute value");
        if (text_[pos_] == '&')
          entity(value);
        else
          value += text_[pos_++];
      }
      if (pos_ >= text_.size()) fail("unterminated attribute value");
      ++pos_;
      node.attributes.emplace_back(attribute, std::move(value));
    }
    if (is_void(node.name)) return node;
    if (mode_ == MarkupMode::html && (node.name == "script" || node.name == "style")) {
      const std::string end_tag = "</" + node.name + ">";
      const auto end = text_.find(end_tag, pos_);
      if (end == std::string_view::npos) fail("<" + node.name + "> is never closed");
      node.text = std::string(text_.substr(pos_, end - pos_));
      pos_ = end + end_tag.size();
      return node;
    }
    parse_children(node, node.name);
    return node;
  }

  std::string_view text_;
  MarkupMode mode_;
  std::size_t pos_ = 0;
};

void collect_text(const MarkupNode& node, std::string& out) {
  // Text and children interleave in the document; the parser keeps them apart, so the text of
  // a node comes first. Enough for the tests, which look for figures, not their order.
  out += node.text;
  for (const auto& child : node.children) collect_text(child, out);
}

void collect(const MarkupNode& node, std::string_view element_name, std::string_view attribute,
             std::string_view value, std::vector<const MarkupNode*>& out) {
  for (const auto& child : node.children) {
    if (child.name == element_name) {
      const std::string* actual = attribute.empty() ? nullptr : child.attribute(attribute);
      if (attribute.empty() || (actual && *actual == value)) out.push_back(&child);
    }
    collect(child, element_name, attribute, value, out);
  }
}

}  // namespace

const std::string* MarkupNode::attribute(std::string_view attribute_name) const {
  for (const auto& [key, value] : attributes)
    if (key == attribute_name) return &value;
  return nullptr;
}

std::string MarkupNode::all_text() const {
  std::string out;
  collect_text(*this, out);
  return out;
}

const MarkupNode* MarkupNode::by_id(std::string_view id) const {
  const std::string* own = attribute("id");
  if (own && *own == id) return this;
  for (const auto& child : children)
    if (const MarkupNode* found = child.by_id(id)) return found;
  return nullptr;
}

std::vector<const MarkupNode*> MarkupNode::all(std::string_view element_name,
                                               std::string_view attribute_name,
                                               std::string_view value) const {
  std::vector<const MarkupNode*> out;
  collect(*this, element_name, attribute_name, value, out);
  return out;
}

MarkupNode parse_markup(std::string_view text, MarkupMode mode) {
  return Parser(text, mode).document();
}

}  // namespace vigil::test
