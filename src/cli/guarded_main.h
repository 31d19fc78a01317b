// The one catch site every executable shares: usage errors exit 2 with a hint, failures exit 1 with
// one line naming the problem, never a stack trace.
#pragma once
#include <c10/util/Exception.h>
#include <cxxopts.hpp>

#include <functional>
#include <iostream>
#include <string>

#include "src/args.h"

namespace detr {

inline int guarded_main(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << name << ": " << e.what() << "\nTry '" << name << " --help'.\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << name << ": " << e.what() << "\nTry '" << name << " --help'.\n";
    return 2;
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    std::cerr << name << ": error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace detr
