// Where golden data lives (torch-free helper).
//  - data_dir(): the small golden data committed with the project (tests/data), made by the scripts in
//    tests/reference from upstream DETR, scipy, pycocotools and PyTorch. The default suite needs only this.
//  - fixtures_dir(): the larger optional set ($DETR_FIXTURES, else ../shared/fixtures beside the
//    checkout): the R50-size cases. Tests that need it skip, saying why, when it is absent.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace detr::testing {

inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("DETR_TEST_DATA")) return env;
#ifdef DETR_TEST_DATA_DIR
  return DETR_TEST_DATA_DIR;
#else
  return "tests/data";
#endif
}

inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("DETR_FIXTURES")) return env;
#ifdef DETR_DEFAULT_FIXTURES
  return DETR_DEFAULT_FIXTURES;
#else
  return "../shared/fixtures";
#endif
}

// Skips the calling test (GTEST_SKIP) when an optional fixture is absent, saying which and why.
#define DETR_REQUIRE_FIXTURE(path)                                                         \
  do {                                                                                     \
    if (!std::filesystem::exists(path))                                                    \
      GTEST_SKIP() << "optional fixture not found: " << (path)                             \
                   << " (the larger golden data set; set DETR_FIXTURES to its directory)"; \
  } while (0)

}  // namespace detr::testing
