// The CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota
// (Kubernetes pods on a large node see every core in hardware_concurrency but are throttled to
// their limit).
#pragma once

namespace detr::util {

int usable_cpus();

}  // namespace detr::util
