// Where a step's time goes, op by op: LibTorch's profiler (every ATen op and autograd node records its
// span) around the code between start() and stop(), reduced to self time per op name — the time inside
// an op less the time in the ops it called. What `detr_bench --profile N` prints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace detr {

struct OpTime {
  std::string name;  // "aten::addmm", "MulBackward0", ...
  int64_t calls = 0;
  double self_s = 0;   // seconds in the op itself
  double total_s = 0;  // seconds in the op and what it called
};

class OpProfile {
 public:
  OpProfile();   // starts recording on this thread (and the threads it hands work to)
  ~OpProfile();  // stops, if stop() was not called
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  // Stops recording; the ops by self time, largest first.
  std::vector<OpTime> stop();

 private:
  bool running_ = true;
};

}  // namespace detr
