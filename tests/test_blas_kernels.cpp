// The OpenBLAS kernels every executable runs (util/blas_kernels.h): this test binary links the same
// start-up choice as the tools.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "tests/support.h"
#include "util/blas_kernels.h"

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

TEST(BlasKernels, TheLoadedKernelsAreTheOnesNamedAtStartUp) {
  if (!detr::util::blas_kernels_switchable())
    GTEST_SKIP() << "the BLAS LibTorch loaded is not an OpenBLAS that chooses its kernels at run time";
  const auto core = detr::util::blas_core_in_use();
  const char* for_cpu = detr::util::blas_coretype_for_this_cpu();
  const char* named = std::getenv("OPENBLAS_CORETYPE");
  std::cout << "OpenBLAS kernels: " << core << " (OPENBLAS_CORETYPE=" << (named ? named : "unset")
            << ", this CPU's instructions run " << (for_cpu ? for_cpu : "neither SkylakeX nor Haswell") << ")\n";
  if (!for_cpu) return;                             // no AVX2: OpenBLAS's choice stands
  if (named && lower(named) == "prescott") return;  // asked for by the user
  EXPECT_NE(lower(core), "prescott") << "OpenBLAS runs its SSE3 fallback on a CPU with " << for_cpu
                                     << "'s instructions";
}

TEST(BlasKernels, TheUsersChoiceWins) {
  if (!detr::util::blas_kernels_switchable())
    GTEST_SKIP() << "the BLAS LibTorch loaded is not an OpenBLAS that chooses its kernels at run time";
  if (!detr::util::blas_coretype_for_this_cpu()) GTEST_SKIP() << "this CPU has no AVX2: Haswell's kernels cannot run";
  const auto r = detr::testing::run_command("OPENBLAS_CORETYPE=Haswell /proc/" + std::to_string(getpid()) +
                                            "/exe --gtest_filter=BlasKernels.TheLoadedKernelsAreTheOnesNamedAtStartUp");
  std::cout << r.output;
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("OpenBLAS kernels: Haswell (OPENBLAS_CORETYPE=Haswell"), std::string::npos);
}

}  // namespace
