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
  const auto core = detr::util::blas_core_in_use();
  if (core.empty()) GTEST_SKIP() << "the BLAS LibTorch loaded is not OpenBLAS: nothing to choose";
  const char* for_cpu = detr::util::blas_coretype_for_this_cpu();
  const char* named = std::getenv("OPENBLAS_CORETYPE");
  std::cout << "OpenBLAS kernels: " << core << " (OPENBLAS_CORETYPE=" << (named ? named : "unset")
            << ", this CPU's instructions run " << (for_cpu ? for_cpu : "neither SkylakeX nor Haswell") << ")\n";
  if (named) {  // set by the user, or by the start-up switch away from Prescott
    EXPECT_EQ(lower(core), lower(named));
  } else if (for_cpu) {  // OpenBLAS knew this CPU and was left alone
    EXPECT_NE(core, "Prescott") << "OpenBLAS runs its SSE3 fallback on a CPU with " << for_cpu << "'s instructions";
  }
}

TEST(BlasKernels, TheUsersChoiceWins) {
  if (detr::util::blas_core_in_use().empty()) GTEST_SKIP() << "the BLAS LibTorch loaded is not OpenBLAS";
  const char* for_cpu = detr::util::blas_coretype_for_this_cpu();
  if (!for_cpu) GTEST_SKIP() << "this CPU has no AVX2: no kernels named at start-up to override";
  const auto r = detr::testing::run_command("OPENBLAS_CORETYPE=Haswell /proc/" + std::to_string(getpid()) +
                                            "/exe --gtest_filter=BlasKernels.TheLoadedKernelsAreTheOnesNamedAtStartUp");
  std::cout << r.output;
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("OpenBLAS kernels: Haswell (OPENBLAS_CORETYPE=Haswell"), std::string::npos);
}

}  // namespace
