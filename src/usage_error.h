// A bad command line: every CLI prints it with a usage hint and exits 2 (src/cli/guarded_main.h).
#pragma once
#include <stdexcept>

namespace detr {

struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace detr
