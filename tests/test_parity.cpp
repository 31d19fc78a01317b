// Parity with upstream DETR on the golden fixtures (forward, matching, losses, gradients,
// post-processing). Prints every measured deviation.
#include <gtest/gtest.h>

#include <iostream>

#include "src/parity.h"
#include "tests/fixtures.h"

namespace {
void expect_parity(const std::string& name) {
  const auto dir = detr::testing::fixtures_dir() / "detr" / name;
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  auto report = detr::run_forward_parity(dir.string());
  std::cout << report.format();
  EXPECT_TRUE(report.ok());
  EXPECT_GT(report.rows.size(), 20u);
}
}  // namespace

TEST(Parity, TinyR18MatchesUpstream) { expect_parity("tiny_r18"); }
TEST(Parity, R50DefaultMatchesUpstream) { expect_parity("r50_default"); }

TEST(Parity, TrainStepsTinyR18ReplayUpstreamOptimizer) {
  const auto dir = detr::testing::fixtures_dir() / "train_steps" / "tiny_r18";
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  auto report = detr::run_train_parity(dir.string());
  std::cout << report.format();
  EXPECT_TRUE(report.ok());
  EXPECT_GE(report.rows.size(), 3u * 6u);  // loss, grad_norm and lr of every step
}
