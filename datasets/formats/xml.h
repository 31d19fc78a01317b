// Annotation XML (Pascal VOC, LabelMe, CVAT) as a tree of XmlElement, parsed by pugixml. On top of
// pugixml's well-formedness checks: UTF-8 only (checked, as declared), no NUL bytes, one root element
// and no text outside it, the XML declaration first, no DOCTYPE internal subset (pugixml expands no
// entities; a document that defines some is refused), only the five predefined entities and valid
// character references (decoded here), no duplicate attribute. Namespaces are not processed (a prefix
// is part of the name), nothing is validated.
//
// Memory is bounded by the input: at most max_bytes of text; before parsing, the start tags are
// counted (at most max_elements, and one per bytes_per_element of text), so pugixml's tree never
// holds more; while converting, at most max_depth nested elements and max_attributes attributes per
// element. Every error is one std::runtime_error "<source>: line N: <what>" (the line of the problem).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace detr::datasets::formats {

struct XmlLimits {
  uint64_t max_bytes = uint64_t{256} << 20;
  int max_depth = 256;
  int64_t max_elements = 16'000'000;
  // Elements per byte of text: an unindented LabelMe point (<pt><x>12</x><y>34</y></pt>) spends about
  // 10 bytes an element, "<a/>" four; a file of N bytes holds at most N / 8 elements (at least 65,536),
  // so memory is O(N) whatever it declares.
  int64_t bytes_per_element = 8;
  size_t max_attributes = 256;  // per element (real ones have a handful)
};

struct XmlElement {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;  // in document order, decoded
  std::string text;  // character data directly inside (CDATA and entities decoded), the pieces
                     // between child elements concatenated (whitespace-only pieces beside elements left out)
  std::vector<XmlElement> children;
  int64_t line = 0;  // line of the start tag (1-based)

  // The attribute's value, or nullptr.
  const std::string* attribute(std::string_view key) const;
  // The first child element of that name, or nullptr.
  const XmlElement* child(std::string_view child_name) const;
  // Every child element of that name, in document order.
  std::vector<const XmlElement*> children_named(std::string_view child_name) const;
};

// Parses a whole document (one root element; only comments, processing instructions, a DOCTYPE
// without internal subset and whitespace around it). `source` names the document in errors.
XmlElement parse_xml(std::string_view text, const std::string& source, const XmlLimits& limits = {});

// Reads the file (at most limits.max_bytes, checked before reading) and parses it.
XmlElement read_xml_file(const std::filesystem::path& path, const XmlLimits& limits = {});

// The name of the root element from the file's first 64 KiB, without parsing the rest ("" when
// none is found there): for format detection.
std::string peek_xml_root(const std::filesystem::path& path);

// Field access for the readers, failing with "<file>: line N: <where>: <what>, got '<value>'" (the
// element's line). `where` names the record ("object 2"); fields are named as "<parent>.<child>".
// `where` by value: a temporary name (GCC 14's -Wdangling-reference) is never what the result refers to.
const XmlElement& require_child(const XmlElement& el,
                                std::string_view name,
                                const std::filesystem::path& file,
                                std::string_view where);
// The child's text as a finite number (trimmed).
double child_number(const XmlElement& el,
                    std::string_view name,
                    const std::filesystem::path& file,
                    const std::string& where);
// The attribute's value as a finite number; the attribute must be present.
double attribute_number(const XmlElement& el,
                        std::string_view key,
                        const std::filesystem::path& file,
                        const std::string& where);
const std::string& require_attribute(const XmlElement& el,
                                     std::string_view key,
                                     const std::filesystem::path& file,
                                     const std::string& where);

}  // namespace detr::datasets::formats
