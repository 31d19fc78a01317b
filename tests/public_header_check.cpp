// Compiled on its own, without the repository root on the include path and without the precompiled
// LibTorch headers: <detr/detr.h> must stand alone, as an application embedding detr-cpp sees it.
#include <detr/detr.h>

#include <type_traits>

static_assert(std::is_move_constructible_v<detr::Detector>, "Detector is a movable handle");
static_assert(!std::is_copy_constructible_v<detr::Detector>, "Detector owns its model");

int detr_public_header_check(const detr::DetectorOptions& o) { return static_cast<int>(o.topk); }
