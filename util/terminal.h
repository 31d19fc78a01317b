// Text from files made safe for a terminal or a log line: whatever part of a file it came from (keys,
// strings, class names, archive folders, file names), no byte reaches the terminal raw.
#pragma once
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace detr::util {

// Valid printable UTF-8 stays; every other byte (ESC, BEL, DEL, C1 controls such as U+009B, invalid
// UTF-8) becomes \xNN. Newlines and tabs stay, or with newlines_escaped (one line of a log or an
// error) become "\n" and \x09.
std::string terminal_safe(std::string_view text, bool newlines_escaped = false);

// A stream that writes whole lines to `sink` through terminal_safe: the tools' messages quote file
// names, class names and values from files, none of which reaches the terminal raw. A partial line
// waits for its newline (or a flush), so a UTF-8 character is never cut in two.
class TerminalSafeStream : public std::ostream {
 public:
  explicit TerminalSafeStream(std::ostream& sink);
  ~TerminalSafeStream() override;

 private:
  class Buffer;
  std::unique_ptr<Buffer> buffer_;
};

}  // namespace detr::util
