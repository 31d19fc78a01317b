// The one catch site every executable shares: usage errors (UsageError, the only kind) exit 2 with a
// hint, failures exit 1 with one line naming the problem, never a stack trace.
#pragma once
#include <c10/util/Exception.h>

#include <functional>
#include <iostream>
#include <new>
#include <string>
#include <string_view>

#include "src/usage_error.h"
#include "util/terminal.h"

namespace detr {

// Errors are one line: newlines, control characters (an escape sequence from a crafted file) and
// invalid UTF-8 are escaped (util::terminal_safe), so nothing reaches the terminal or a log parser raw.
inline std::string one_line(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return util::terminal_safe(s, /*newlines_escaped=*/true);
}

inline int guarded_main(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {  // every bad command line (FlagTable::parse turns cxxopts' errors into these)
    std::cerr << name << ": " << one_line(e.what()) << "\nTry '" << name << " --help'.\n";
    return 2;
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    std::cerr << name << ": error: " << one_line(msg.substr(0, msg.find('\n'))) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << name
              << ": error: out of memory (std::bad_alloc): the input needs more memory than this "
                 "machine has, or declares more than it holds\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << one_line(e.what()) << "\n";
    return 1;
  }
}

}  // namespace detr
