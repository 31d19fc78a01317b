#include "datasets/formats/xml.h"

#include <algorithm>
#include <cctype>
#include <fstream>
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

bool name_start(unsigned char c) { return std::isalpha(c) || c == '_' || c == ':' || c >= 0x80; }
bool name_char(unsigned char c) { return name_start(c) || std::isdigit(c) || c == '-' || c == '.'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// UTF-8 encoding of a code point from a character reference.
void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& source, const XmlLimits& limits)
      : text_(text), source_(source), limits_(limits),
        max_elements_(std::min(limits.max_elements,
                               std::max<int64_t>(65536, static_cast<int64_t>(text.size()) /
                                                           std::max<int64_t>(1, limits.bytes_per_element)))) {}

  XmlElement document() {
    if (text_.size() > limits_.max_bytes)
      fail("document of " + std::to_string(text_.size()) + " bytes, above the limit of " +
           std::to_string(limits_.max_bytes));
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    misc(/*prolog=*/true);
    if (!at("<")) fail(pos_ >= text_.size() ? "no root element" : "text outside the root element");
    XmlElement root = element(1);
    misc(/*prolog=*/false);
    if (pos_ < text_.size()) fail(at("<") ? "a second root element" : "text after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) { fail_at(source_, line(), what); }

  int64_t line() {
    line_ += std::count(text_.begin() + counted_, text_.begin() + std::min(pos_, text_.size()), '\n');
    counted_ = std::max(counted_, std::min(pos_, text_.size()));
    return line_;
  }
  bool at(std::string_view s) const { return text_.substr(pos_, s.size()) == s; }
  void expect(std::string_view s, const char* what) {
    if (!at(s)) fail(std::string("expected ") + what);
    pos_ += s.size();
  }
  void skip_space() {
    while (pos_ < text_.size() && space(text_[pos_])) ++pos_;
  }
  // Skips to just past `end`; fails naming what was left open.
  void skip_past(std::string_view end, const char* what) {
    const size_t e = text_.find(end, pos_);
    if (e == std::string_view::npos) fail(std::string("unterminated ") + what);
    pos_ = e + end.size();
  }

  std::string name() {
    const size_t start = pos_;
    if (pos_ >= text_.size() || !name_start(static_cast<unsigned char>(text_[pos_]))) fail("expected a name");
    while (pos_ < text_.size() && name_char(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  // At '&': one of the five entities or a character reference, appended decoded.
  void reference(std::string& out) {
    const size_t semi = text_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) fail("'&' that starts no entity (write &amp;)");
    const std::string_view ref = text_.substr(pos_ + 1, semi - pos_ - 1);
    static const std::pair<const char*, char> kEntities[] = {
        {"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
    for (const auto& [n, c] : kEntities)
      if (ref == n) {
        out += c;
        pos_ = semi + 1;
        return;
      }
    if (ref.size() < 2 || ref[0] != '#') fail("unknown entity &" + std::string(ref) + ";");
    const bool hex = ref[1] == 'x';
    const std::string digits(ref.substr(hex ? 2 : 1));
    const bool ok = !digits.empty() && std::all_of(digits.begin(), digits.end(), [&](char c) {
      return hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c));
    });
    const unsigned long cp = ok ? std::stoul(digits, nullptr, hex ? 16 : 10) : 0;
    if (!ok || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail("invalid character reference &" + std::string(ref) + ";");
    append_utf8(out, static_cast<uint32_t>(cp));
    pos_ = semi + 1;
  }

  std::string attribute_value() {
    if (pos_ >= text_.size() || (text_[pos_] != '"' && text_[pos_] != '\'')) fail("expected a quoted attribute value");
    const char q = text_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= text_.size()) fail("unterminated attribute value");
      const char c = text_[pos_];
      if (c == q) break;
      if (c == '<') fail("'<' inside an attribute value");
      if (c == '&') {
        reference(value);
      } else {
        value += c;
        ++pos_;
      }
    }
    ++pos_;
    return value;
  }

  // `<?xml ...?>` (only first), other processing instructions, comments, DOCTYPE, whitespace.
  void misc(bool prolog) {
    while (true) {
      skip_space();
      if (at("<?xml") && pos_ + 5 < text_.size() && space(text_[pos_ + 5])) {
        if (!prolog || pos_ > 3 || (pos_ == 3 && text_.substr(0, 3) != "\xEF\xBB\xBF"))
          fail("XML declaration not at the start of the document");
        declaration();
      } else if (at("<?")) {
        skip_past("?>", "processing instruction");
      } else if (at("<!--")) {
        comment();
      } else if (at("<!DOCTYPE")) {
        if (!prolog) fail("DOCTYPE after the root element");
        doctype();
      } else {
        return;
      }
    }
  }

  void declaration() {
    const size_t start = pos_;
    skip_past("?>", "XML declaration");
    std::string decl(text_.substr(start, pos_ - start));
    std::transform(decl.begin(), decl.end(), decl.begin(), [](unsigned char c) { return std::tolower(c); });
    const size_t enc = decl.find("encoding");
    if (enc == std::string::npos) return;
    const size_t q = decl.find_first_of("\"'", enc);
    const size_t e = q == std::string::npos ? q : decl.find(decl[q], q + 1);
    const std::string encoding = e == std::string::npos ? "" : decl.substr(q + 1, e - q - 1);
    if (encoding != "utf-8" && encoding != "utf8" && encoding != "us-ascii" && encoding != "ascii")
      fail("encoding " + quote(encoding) + " is not supported (UTF-8 only)");
  }

  void comment() {
    pos_ += 4;
    const size_t e = text_.find("--", pos_);
    if (e == std::string_view::npos) fail("unterminated comment");
    if (text_.substr(e, 3) != "-->") {
      pos_ = e;
      fail("'--' inside a comment");
    }
    pos_ = e + 3;
  }

  void doctype() {
    const size_t start = pos_;
    const size_t e = text_.find('>', pos_);
    if (e == std::string_view::npos) fail("unterminated DOCTYPE");
    if (text_.substr(start, e - start).find('[') != std::string_view::npos)
      fail("DOCTYPE with an internal subset (entity definitions) is not supported");
    pos_ = e + 1;
  }

  void attributes(XmlElement& el) {
    while (true) {
      const size_t before = pos_;
      skip_space();
      if (pos_ >= text_.size()) fail("unterminated start tag <" + el.name + ">");
      if (at(">") || at("/>")) return;
      if (pos_ == before) fail("expected whitespace before an attribute in <" + el.name + ">");
      std::string key = name();
      skip_space();
      expect("=", "'=' after an attribute name");
      skip_space();
      std::string value = attribute_value();
      if (el.attributes.size() >= limits_.max_attributes)
        fail("more than " + std::to_string(limits_.max_attributes) + " attributes in <" + el.name + ">");
      if (el.attribute(key)) fail("duplicate attribute '" + key + "' in <" + el.name + ">");
      el.attributes.emplace_back(std::move(key), std::move(value));
    }
  }

  XmlElement element(int depth) {
    if (depth > limits_.max_depth) fail("elements nested deeper than " + std::to_string(limits_.max_depth));
    if (++elements_ > max_elements_)
      fail("more than " + std::to_string(max_elements_) + " elements (at most one per " +
           std::to_string(limits_.bytes_per_element) + " bytes of a " + std::to_string(text_.size()) + "-byte file)");
    XmlElement el;
    el.line = line();
    ++pos_;  // '<'
    el.name = name();
    attributes(el);
    if (at("/>")) {
      pos_ += 2;
      return el;
    }
    ++pos_;  // '>'
    content(el, depth);
    return el;
  }

  // Character data, children, comments and CDATA up to the matching end tag.
  void content(XmlElement& el, int depth) {
    while (true) {
      if (pos_ >= text_.size())
        fail("unterminated element <" + el.name + "> (opened on line " + std::to_string(el.line) + ")");
      const char c = text_[pos_];
      if (c == '&') {
        reference(el.text);
      } else if (c != '<') {
        const size_t e = std::min(text_.find_first_of("<&", pos_), text_.size());
        el.text.append(text_.substr(pos_, e - pos_));
        pos_ = e;
      } else if (at("</")) {
        pos_ += 2;
        const std::string end = name();
        skip_space();
        expect(">", "'>' closing an end tag");
        if (end != el.name)
          fail("end tag </" + end + "> does not match <" + el.name + "> (line " + std::to_string(el.line) + ")");
        return;
      } else if (at("<!--")) {
        comment();
      } else if (at("<![CDATA[")) {
        const size_t start = pos_ + 9;
        pos_ = start;
        skip_past("]]>", "CDATA section");
        el.text.append(text_.substr(start, pos_ - 3 - start));
      } else if (at("<?")) {
        skip_past("?>", "processing instruction");
      } else if (at("<!")) {
        fail("unexpected markup declaration inside <" + el.name + ">");
      } else {
        el.children.push_back(element(depth + 1));
      }
    }
  }

  std::string_view text_;
  const std::string& source_;
  XmlLimits limits_;
  size_t pos_ = 0;
  size_t counted_ = 0;
  int64_t line_ = 1;
  int64_t max_elements_;  // limits_.max_elements, or fewer for a small file
  int64_t elements_ = 0;
};

}  // namespace

XmlElement parse_xml(std::string_view text, const std::string& source, const XmlLimits& limits) {
  return Parser(text, source, limits).document();
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
  size_t pos = 0;
  while ((pos = head.find('<', pos)) != std::string::npos) {
    if (pos + 1 < head.size() && name_start(static_cast<unsigned char>(head[pos + 1]))) {
      size_t e = pos + 1;
      while (e < head.size() && name_char(static_cast<unsigned char>(head[e]))) ++e;
      return head.substr(pos + 1, e - pos - 1);
    }
    if (head.compare(pos, 4, "<!--") == 0) {
      const size_t e = head.find("-->", pos);
      if (e == std::string::npos) return "";
      pos = e + 3;
    } else {
      ++pos;
    }
  }
  return "";
}

const XmlElement& require_child(const XmlElement& el, std::string_view name, const fs::path& file,
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

const std::string& require_attribute(const XmlElement& el, std::string_view key, const fs::path& file,
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
