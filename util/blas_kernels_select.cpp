// Linked into every executable of the project (util/blas_kernels.h): its constructor runs after the
// shared libraries' (OpenBLAS has chosen its kernels) and before main() or any BLAS call.
#include "util/blas_kernels.h"

namespace {
__attribute__((constructor)) void select_blas_kernels_at_start() { detr::util::select_blas_kernels(); }
}  // namespace
