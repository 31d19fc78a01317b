#include "util/cpu.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace detr::util {

int usable_cpus() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = std::max(1, CPU_COUNT(&set));
  std::ifstream quota("/sys/fs/cgroup/cpu.max");  // "max 100000" or "<quota> <period>"
  std::string q, p;
  if (quota >> q >> p && q != "max") {
    const double cpus = std::stod(q) / std::stod(p);
    if (cpus > 0) n = std::min(n, std::max(1, static_cast<int>(std::ceil(cpus))));
  }
  return n;
}

}  // namespace detr::util
