// Text from files made safe for a terminal or a log line: whatever part of a file it came from (keys,
// strings, class names, archive folders, file names), no byte reaches the terminal raw.
#pragma once
#include <string>
#include <string_view>

namespace detr::util {

// Valid printable UTF-8 stays; every other byte (ESC, BEL, DEL, C1 controls such as U+009B, invalid
// UTF-8) becomes \xNN. Newlines and tabs stay, or with newlines_escaped (one line of a log or an
// error) become "\n" and \x09.
std::string terminal_safe(std::string_view text, bool newlines_escaped = false);

}  // namespace detr::util
