#include "util/cpu.h"

#include <sched.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

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

bool cpu_has_native_bf16() {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // no OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool avx512_state = (lo & 0xE6u) == 0xE6u;         // XMM, YMM, opmask, ZMM halves
  const bool amx_state = (lo & (3u << 17)) == (3u << 17);  // XTILECFG, XTILEDATA
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d & (1u << 22)) != 0;
  const bool avx512f = (b & (1u << 16)) != 0;
  const unsigned max_sub = a;
  bool avx512_bf16 = false;
  if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = (a & (1u << 5)) != 0;
  return (avx512f && avx512_bf16 && avx512_state) || (amx_bf16 && amx_state);
#else
  return false;
#endif
}

}  // namespace detr::util
