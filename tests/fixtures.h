// Where the golden data computed by upstream DETR, scipy and pycocotools lives (torch-free helper).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace detr::testing {

// $DETR_FIXTURES, else ../shared/fixtures beside the checkout.
inline std::filesystem::path fixtures_dir() {
  if (const char* env = std::getenv("DETR_FIXTURES")) return env;
#ifdef DETR_DEFAULT_FIXTURES
  return DETR_DEFAULT_FIXTURES;
#else
  return "../shared/fixtures";
#endif
}

// Skips the calling test (GTEST_SKIP) when a fixture is absent, saying which.
#define DETR_REQUIRE_FIXTURE(path)                                              \
  do {                                                                          \
    if (!std::filesystem::exists(path))                                         \
      GTEST_SKIP() << "fixture not found: " << (path) << " (set DETR_FIXTURES)"; \
  } while (0)

}  // namespace detr::testing
