// The CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota
// (Kubernetes pods on a large node see every core in hardware_concurrency but are throttled to
// their limit). And what the CPU computes natively.
#pragma once

namespace detr::util {

int usable_cpus();

// Whether this CPU does bfloat16 arithmetic in hardware (AVX512_BF16 or AMX-BF16) and the OS enabled
// the registers it needs. Elsewhere LibTorch's bf16 runs through conversions, slower than float32.
bool cpu_has_native_bf16();

}  // namespace detr::util
