// Text helpers shared by the export readers (YOLO, VOC, MOT, LabelMe, CVAT, TFRecord label maps):
// files read whole under a size limit, lines, strict numbers, and values quoted for one-line errors.
// Pure C++17, no tensors.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/read_error.h"

namespace detr::datasets::formats {

// The largest annotation or list file read (a CVAT XML of a 100k-image task is tens of MB).
constexpr uint64_t kMaxTextFileBytes = uint64_t{256} << 20;

// The file's bytes. Throws "<file>: cannot open ..." or "<file>: N bytes, above the limit of M"
// before reading anything larger than max_bytes.
std::string read_text_file(const std::filesystem::path& path, uint64_t max_bytes = kMaxTextFileBytes);

// Lines without their '\n' or "\r\n" (a final line without a newline counts; a trailing newline
// adds no empty line). A UTF-8 byte-order mark at the start is dropped.
std::vector<std::string_view> split_lines(std::string_view text);

// Whitespace (space, tab, CR, LF) trimmed from both ends.
std::string_view trim(std::string_view s);

// Fields separated by runs of whitespace.
std::vector<std::string_view> split_whitespace(std::string_view s);

// Fields separated by `sep`, each trimmed ("a, b" -> "a", "b"; "" -> one empty field).
std::vector<std::string_view> split(std::string_view s, char sep);

// Strict numbers: the whole (trimmed) text must be one finite decimal number / integer within int64
// ("1.0" is an integer where parse_int allows integral decimals). nullopt otherwise.
std::optional<double> parse_double(std::string_view s);
std::optional<int64_t> parse_int(std::string_view s, bool allow_integral_decimal = false);

// The offset of the first byte that does not belong to a well-formed UTF-8 character (overlong forms,
// surrogates and code points above U+10FFFF included), or npos when the text is valid UTF-8.
size_t invalid_utf8_at(std::string_view text);

// A value for an error message: single-quoted, control characters escaped (\n, \xNN), cut at 200
// bytes with its length: quote("a\nb") == "'a\\nb'".
std::string quote(std::string_view value);

// "<file>: line N: <what>" as a std::runtime_error (line 0 leaves the line out); the shared reader
// error (read_error.h) with the line as the record.
[[noreturn]] void fail_at(const std::filesystem::path& file, int64_t line, const std::string& what);
using detr::datasets::fail_at;

}  // namespace detr::datasets::formats
