#include "datasets/formats/xml.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <pugixml.hpp>
#include <stdexcept>

#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

const std::string* XmlElement::attribute(std::string_view key) const {
  for (const auto& [k, v] : attributes)
    if (k == key) return &v;
  return nullptr;
}

const XmlElement* XmlElement::child(std::string_view child_name) const {
  for (const auto& c : children)
    if (c.name == child_name) return &c;
  return nullptr;
}

std::vector<const XmlElement*> XmlElement::children_named(std::string_view child_name) const {
  std::vector<const XmlElement*> out;
  for (const auto& c : children)
    if (c.name == child_name) out.push_back(&c);
  return out;
}

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// pugixml's options: entities are decoded here (strictly), whitespace-only text only where it is an
// element's whole content, text outside the root kept (to refuse it), comments and processing
// instructions skipped.
constexpr unsigned kParseOptions = pugi::parse_cdata | pugi::parse_eol | pugi::parse_wconv_attribute |
                                   pugi::parse_declaration | pugi::parse_doctype | pugi::parse_fragment |
                                   pugi::parse_ws_pcdata_single;

// Line numbers of byte offsets of the text; offsets asked in increasing order are counted once. An
// unknown offset (pugixml's -1) is on the line last asked for.
class LineIndex {
 public:
  explicit LineIndex(std::string_view text) : text_(text) {}
  int64_t line(ptrdiff_t at) {
    if (at < 0) return line_;
    const size_t offset = std::min(static_cast<size_t>(at), text_.size());
    if (offset < counted_) {
      counted_ = 0;
      line_ = 1;
    }
    line_ += std::count(text_.begin() + counted_, text_.begin() + offset, '\n');
    counted_ = offset;
    return line_;
  }

 private:
  std::string_view text_;
  size_t counted_ = 0;
  int64_t line_ = 1;
};

// UTF-8 encoding of a code point from a character reference: a lead byte, then 6 bits a byte.
void append_utf8(std::string& out, uint32_t cp) {
  static const unsigned char kLead[] = {0x00, 0xC0, 0xE0, 0xF0};
  const int more = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
  out += static_cast<char>(kLead[more] | (cp >> (6 * more)));
  for (int k = more - 1; k >= 0; --k) out += static_cast<char>(0x80 | ((cp >> (6 * k)) & 0x3F));
}

// The code point of a character reference's body ("#65", "#x20AC"), or 0 when it is not a valid one.
uint32_t character_reference(std::string_view ref) {
  if (ref.size() < 2 || ref.size() > 10 || ref[0] != '#') return 0;
  const bool hex = ref[1] == 'x';
  const std::string_view digits = ref.substr(hex ? 2 : 1);
  uint32_t cp = 0;
  for (const char c : digits) {
    const int d = std::isdigit(static_cast<unsigned char>(c))           ? c - '0'
                  : hex && std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10
                                                                        : -1;
    if (d < 0) return 0;
    cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
    if (cp > 0x10FFFF) return 0;
  }
  return digits.empty() || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : cp;
}

// Appends the raw text to `out` with the five predefined entities and character references decoded.
// Returns "" when every '&' starts one of them, else what is wrong (and `bad` is where).
std::string decode_references(std::string_view raw, std::string& out, size_t& bad) {
  static const std::pair<std::string_view, char> kEntities[] = {
      {"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
  for (size_t pos = 0; pos < raw.size();) {
    const size_t amp = std::min(raw.find('&', pos), raw.size());
    out.append(raw.substr(pos, amp - pos));
    if (amp == raw.size()) break;
    bad = amp;
    const size_t semi = raw.find(';', amp);
    if (semi == std::string_view::npos || semi - amp > 12) return "'&' that starts no entity (write &amp;)";
    const std::string_view ref = raw.substr(amp + 1, semi - amp - 1);
    const auto named =
        std::find_if(std::begin(kEntities), std::end(kEntities), [&](const auto& e) { return e.first == ref; });
    if (named != std::end(kEntities)) {
      out += named->second;
    } else if (const uint32_t cp = character_reference(ref)) {
      append_utf8(out, cp);
    } else {
      return (ref.empty() || ref[0] != '#' ? "unknown entity &" : "invalid character reference &") + std::string(ref) +
             ";";
    }
    pos = semi + 1;
  }
  return "";
}

// Refuses what pugixml would read differently from the bytes: too many bytes, a NUL (which ends
// pugixml's strings), invalid UTF-8.
void check_bytes(std::string_view text, const std::string& source, const XmlLimits& limits) {
  if (text.size() > limits.max_bytes)
    fail_at(source, 0,
            "document of " + std::to_string(text.size()) + " bytes, above the limit of " +
                std::to_string(limits.max_bytes));
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail_at(source, LineIndex(text).line(static_cast<ptrdiff_t>(nul)),
            "NUL byte at byte " + std::to_string(nul) + " (not allowed in XML)");
  if (const size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    fail_at(source, LineIndex(text).line(static_cast<ptrdiff_t>(bad)),
            "invalid UTF-8 at byte " + std::to_string(bad) + " (UTF-8 only)");
}

// Counts the start tags ('<' and neither '/', '!' nor '?': an upper bound on the elements, as a '<'
// inside a comment or CDATA section counts too) and the '=' signs (an upper bound on the attributes,
// which cost pugixml 40 bytes each), and refuses more than the limit before pugixml builds a node
// for any.
void check_element_count(std::string_view text, const std::string& source, const XmlLimits& limits) {
  const int64_t per_bytes = std::max<int64_t>(1, limits.bytes_per_element);
  const int64_t max_elements =
      std::min(limits.max_elements, std::max<int64_t>(65536, static_cast<int64_t>(text.size()) / per_bytes));
  int64_t count = 0;
  for (size_t at = text.find_first_of("<="); at != std::string_view::npos; at = text.find_first_of("<=", at + 1)) {
    if (text[at] == '<' && at + 1 < text.size() && std::string_view("/!?").find(text[at + 1]) != std::string_view::npos)
      continue;
    if (++count > max_elements)
      fail_at(source, LineIndex(text).line(static_cast<ptrdiff_t>(at)),
              "more than " + std::to_string(max_elements) + " elements (at most one per " + std::to_string(per_bytes) +
                  " bytes of a " + std::to_string(text.size()) + "-byte file, attributes counted too)");
  }
}

// pugixml's parse error as one line: the end tag of a mismatch, else its description and the text there.
[[noreturn]] void fail_parse(const pugi::xml_parse_result& result, std::string_view text, const std::string& source) {
  const size_t at = std::min(static_cast<size_t>(std::max<ptrdiff_t>(result.offset, 0)), text.size());
  const int64_t line = LineIndex(text).line(static_cast<ptrdiff_t>(at));
  if (result.status == pugi::status_end_element_mismatch) {
    if (at >= 2 && text.substr(at - 2, 2) == "</") {
      const std::string_view name = text.substr(at, std::min<size_t>(64, text.find_first_of("> \t\r\n", at) - at));
      fail_at(source, line, "end tag </" + std::string(name) + "> does not match the open element");
    }
    fail_at(source, line, "unterminated element: the document ends before its end tag");
  }
  std::string what = result.description();
  what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  size_t n = 24;  // cut where a character starts
  while (n > 0 && at + n < text.size() && (static_cast<unsigned char>(text[at + n]) & 0xC0) == 0x80) --n;
  const std::string_view excerpt = text.substr(at, n);
  fail_at(source, line, what + " at " + quote(excerpt.substr(0, excerpt.find('\n'))));
}

// The XML declaration: first in the document, and UTF-8 or ASCII if it names an encoding.
void check_declaration(const pugi::xml_node& decl,
                       const pugi::xml_document& doc,
                       std::string_view text,
                       const std::string& source) {
  const ptrdiff_t expected = (text.substr(0, 3) == kBom ? 3 : 0) + 2;  // the name "xml" after "<?"
  if (decl != doc.first_child() || decl.offset_debug() != expected)
    fail_at(source, LineIndex(text).line(decl.offset_debug()), "XML declaration not at the start of the document");
  std::string encoding = decl.attribute("encoding").value();
  std::transform(encoding.begin(), encoding.end(), encoding.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!encoding.empty() && encoding != "utf-8" && encoding != "utf8" && encoding != "us-ascii" && encoding != "ascii")
    fail_at(source, LineIndex(text).line(decl.offset_debug()),
            "encoding " + quote(encoding) + " is not supported (UTF-8 only)");
}

// The root element, after checking what surrounds it: a declaration, a DOCTYPE without internal
// subset (entity definitions) before it, nothing else but comments and processing instructions.
pugi::xml_node root_element(const pugi::xml_document& doc, std::string_view text, const std::string& source) {
  pugi::xml_node root;
  for (const pugi::xml_node& node : doc.children()) {
    auto fail = [&](const std::string& what) { fail_at(source, LineIndex(text).line(node.offset_debug()), what); };
    if (node.type() == pugi::node_declaration) {
      check_declaration(node, doc, text, source);
    } else if (node.type() == pugi::node_doctype) {
      if (root) fail("DOCTYPE after the root element");
      if (std::string_view(node.value()).find('[') != std::string_view::npos)
        fail("DOCTYPE with an internal subset (entity definitions) is not supported");
    } else if (node.type() == pugi::node_element) {
      if (root) fail("a second root element <" + std::string(node.name()) + ">");
      root = node;
    } else if (node.type() == pugi::node_pcdata || node.type() == pugi::node_cdata) {
      fail("text outside the root element");
    }
  }
  if (!root) fail_at(source, LineIndex(text).line(static_cast<ptrdiff_t>(text.size())), "no root element");
  return root;
}

// pugixml's element tree as XmlElement, with lines, decoded text and the per-element limits.
class Converter {
 public:
  Converter(std::string_view text, const std::string& source, const XmlLimits& limits)
      : lines_(text), source_(source), limits_(limits) {}

  XmlElement element(const pugi::xml_node& node, int depth) {
    XmlElement el;
    el.line = lines_.line(node.offset_debug());
    if (depth > limits_.max_depth)
      fail_at(source_, el.line, "elements nested deeper than " + std::to_string(limits_.max_depth));
    el.name = node.name();
    attributes(node, el);
    for (const pugi::xml_node& child : node.children()) {
      if (child.type() == pugi::node_element) {
        el.children.push_back(element(child, depth + 1));
      } else if (child.type() == pugi::node_pcdata) {
        decode(child.value(), el.text, lines_.line(child.offset_debug()));
      } else if (child.type() == pugi::node_cdata) {
        el.text += child.value();
      }
    }
    return el;
  }

 private:
  // `line`: the raw text's first line; an error names the line of its '&'.
  void decode(std::string_view raw, std::string& out, int64_t line) {
    size_t bad = 0;
    const std::string error = decode_references(raw, out, bad);
    if (!error.empty()) fail_at(source_, line + std::count(raw.begin(), raw.begin() + bad, '\n'), error);
  }

  void attributes(const pugi::xml_node& node, XmlElement& el) {
    for (const pugi::xml_attribute& a : node.attributes()) {
      if (el.attributes.size() >= limits_.max_attributes)
        fail_at(source_, el.line,
                "more than " + std::to_string(limits_.max_attributes) + " attributes in <" + el.name + ">");
      const std::string_view raw = a.value();
      if (raw.find('<') != std::string_view::npos)
        fail_at(source_, el.line, "'<' inside an attribute value (" + el.name + "." + a.name() + ")");
      std::string value;
      decode(raw, value, el.line);
      el.attributes.emplace_back(a.name(), std::move(value));
    }
    // Duplicates by sorting (n log n, n <= max_attributes).
    std::vector<std::string_view> keys;
    for (const auto& [key, value] : el.attributes) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    const auto dup = std::adjacent_find(keys.begin(), keys.end());
    if (dup != keys.end())
      fail_at(source_, el.line, "duplicate attribute '" + std::string(*dup) + "' in <" + el.name + ">");
  }

  LineIndex lines_;
  const std::string& source_;
  const XmlLimits& limits_;
};

}  // namespace

XmlElement parse_xml(std::string_view text, const std::string& source, const XmlLimits& limits) {
  check_bytes(text, source, limits);
  check_element_count(text, source, limits);
  pugi::xml_document doc;
  const pugi::xml_parse_result result = doc.load_buffer(text.data(), text.size(), kParseOptions, pugi::encoding_utf8);
  if (!result) fail_parse(result, text, source);
  return Converter(text, source, limits).element(root_element(doc, text, source), 1);
}

XmlElement read_xml_file(const fs::path& path, const XmlLimits& limits) {
  const std::string text = read_text_file(path, limits.max_bytes);
  return parse_xml(text, path.string(), limits);
}

std::string peek_xml_root(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(64 * 1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  // A file longer than the head fails to parse there; the tree up to that point is kept.
  pugi::xml_document doc;
  doc.load_buffer(head.data(), head.size(), pugi::parse_minimal, pugi::encoding_utf8);
  return doc.document_element().name();
}

const XmlElement& require_child(const XmlElement& el,
                                std::string_view name,
                                const fs::path& file,
                                std::string_view where) {
  if (const XmlElement* c = el.child(name)) return *c;
  fail_at(file, el.line, std::string(where) + ": <" + el.name + "> has no <" + std::string(name) + ">");
}

double child_number(const XmlElement& el, std::string_view name, const fs::path& file, const std::string& where) {
  const XmlElement& c = require_child(el, name, file, where);
  const auto v = parse_double(c.text);
  if (!v)
    fail_at(file, c.line, where + ": " + el.name + "." + std::string(name) + " must be a number, got " + quote(c.text));
  return *v;
}

const std::string& require_attribute(const XmlElement& el,
                                     std::string_view key,
                                     const fs::path& file,
                                     const std::string& where) {
  if (const std::string* v = el.attribute(key)) return *v;
  fail_at(file, el.line, where + ": <" + el.name + "> has no attribute '" + std::string(key) + "'");
}

double attribute_number(const XmlElement& el, std::string_view key, const fs::path& file, const std::string& where) {
  const std::string& text = require_attribute(el, key, file, where);
  const auto v = parse_double(text);
  if (!v)
    fail_at(file, el.line, where + ": " + el.name + "." + std::string(key) + " must be a number, got " + quote(text));
  return *v;
}

}  // namespace detr::datasets::formats
