// Which OpenBLAS kernels this process runs, and the choice made for CPUs the OpenBLAS does not know.
//
// A dynamic-architecture OpenBLAS picks its kernels for the CPU when it loads. A CPU newer than the
// library (Debian 12's 0.3.21 on Intel Sapphire and Emerald Rapids) gets its generic SSE3 kernels
// ("Prescott"): matrix products 4x slower than the CPU's AVX-512 kernels, measured (BENCHMARKS.md).
// Every executable of the project links util/blas_kernels_select.cpp, which calls
// select_blas_kernels() once the libraries are loaded, before main(): where OpenBLAS fell back to
// Prescott on a CPU with AVX-512 (F, CD, BW, DQ, VL) or AVX2 and FMA, and the user has not named
// kernels in OPENBLAS_CORETYPE, it switches OpenBLAS to SkylakeX or Haswell respectively and sets
// OPENBLAS_CORETYPE to that name. A choice OpenBLAS made for a CPU it knows is never changed.
#pragma once

#include <string>

namespace detr::util {

// The kernels this CPU's instruction set can run ("SkylakeX", "Haswell"), or nullptr (no AVX2).
const char* blas_coretype_for_this_cpu();

// The kernels the loaded OpenBLAS runs ("SkylakeX", "Prescott", ...), or "" when the BLAS is not OpenBLAS.
std::string blas_core_in_use();

// Whether the loaded BLAS is an OpenBLAS that can choose its kernels at run time (DYNAMIC_ARCH).
bool blas_kernels_switchable();

// The switch described above; call before any BLAS call, with one thread running. Returns the kernels
// switched to, or "" where nothing changed.
std::string select_blas_kernels();

}  // namespace detr::util
