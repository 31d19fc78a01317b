#include "src/tools/op_profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <map>

namespace detr {

namespace prof = torch::autograd::profiler;

OpProfile::OpProfile() {
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
}

OpProfile::~OpProfile() {
  if (running_) prof::disableProfilerLegacy();
}

std::vector<OpTime> OpProfile::stop() {
  running_ = false;
  const auto lists = prof::disableProfilerLegacy();  // one event list per thread, in time order
  std::map<std::string, OpTime> by_name;
  struct Open {
    const prof::LegacyEvent* push;
    double children_us;
  };
  for (const auto& events : lists) {
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const auto open = stack.back();
        stack.pop_back();
        const double us = open.push->cpuElapsedUs(e);
        auto& t = by_name[open.push->name()];
        t.calls += 1;
        t.total_s += us * 1e-6;
        t.self_s += (us - open.children_us) * 1e-6;
        if (!stack.empty()) stack.back().children_us += us;
      }
    }
  }
  std::vector<OpTime> ops;
  for (auto& [name, t] : by_name) {
    t.name = name;
    ops.push_back(t);
  }
  std::sort(ops.begin(), ops.end(), [](const OpTime& a, const OpTime& b) { return a.self_s > b.self_s; });
  return ops;
}

}  // namespace detr
