#include "util/terminal.h"

#include <cstdint>

namespace detr::util {

namespace {
// The length of the valid UTF-8 sequence at text[i] that encodes a printable character, else 0.
size_t printable_utf8(std::string_view text, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  if (c >= 0x20 && c < 0x7F) return 1;
  const size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > text.size()) return 0;
  uint32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  const bool bad = overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F);
  return bad ? 0 : n;
}
}  // namespace

std::string terminal_safe(std::string_view text, bool newlines_escaped) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\n' && newlines_escaped) {
      out += "\\n";
      ++i;
    } else if (text[i] == '\n' || (text[i] == '\t' && !newlines_escaped)) {
      out += text[i++];
    } else if (const size_t n = printable_utf8(text, i)) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      const auto c = static_cast<unsigned char>(text[i++]);
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

class TerminalSafeStream::Buffer : public std::streambuf {
 public:
  explicit Buffer(std::ostream& sink) : sink_(sink) {}
  ~Buffer() override { sync(); }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return sync() == 0 ? traits_type::not_eof(c) : c;
    line_ += traits_type::to_char_type(c);
    if (c == '\n') sync();
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize i = 0; i < n; ++i) overflow(traits_type::to_int_type(s[i]));
    return n;
  }
  int sync() override {
    if (!line_.empty()) sink_ << terminal_safe(line_);
    line_.clear();
    sink_.flush();
    return sink_ ? 0 : -1;
  }

 private:
  std::ostream& sink_;
  std::string line_;
};

TerminalSafeStream::TerminalSafeStream(std::ostream& sink)
    : std::ostream(nullptr), buffer_(std::make_unique<Buffer>(sink)) {
  rdbuf(buffer_.get());
}

TerminalSafeStream::~TerminalSafeStream() { rdbuf(nullptr); }

}  // namespace detr::util
