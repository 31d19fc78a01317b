// Parity with upstream DETR (forward, matching, losses, gradients, post-processing, optimizer steps).
// The committed fixtures (tests/data, weights by the closed-form rule) always run; the larger
// optional ones (../shared/fixtures or $DETR_FIXTURES: R50, stored weights) run when present.
// Prints every measured deviation.
#include <gtest/gtest.h>

#include <iostream>

#include "src/tools/parity.h"
#include "tests/fixtures.h"

namespace {

void expect_parity(const std::filesystem::path& dir) {
  auto report = detr::run_forward_parity(dir.string());
  std::cout << report.format();
  EXPECT_TRUE(report.ok());
  EXPECT_GT(report.rows.size(), 20u);
}

void expect_train_parity(const std::filesystem::path& dir) {
  auto report = detr::run_train_parity(dir.string());
  std::cout << report.format();
  EXPECT_TRUE(report.ok());
  EXPECT_GE(report.rows.size(), 3u * 6u);  // loss, grad_norm and lr of every step
}

std::filesystem::path optional_fixture(const std::string& sub) { return detr::testing::fixtures_dir() / sub; }

}  // namespace

TEST(Parity, TinyR18MatchesUpstream) { expect_parity(detr::testing::data_dir() / "detr" / "tiny_r18"); }

TEST(Parity, TinyR34PreNormLearnedNoAuxMatchesUpstream) {
  expect_parity(detr::testing::data_dir() / "detr" / "tiny_r34_prenorm_learned");
}

TEST(Parity, TrainStepsTinyR18ReplayUpstreamOptimizer) {
  expect_train_parity(detr::testing::data_dir() / "train_steps" / "tiny_r18");
}

TEST(ParityOptionalFixtures, TinyR18StoredWeightsMatchUpstream) {
  const auto dir = optional_fixture("detr/tiny_r18");
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  expect_parity(dir);
}

TEST(ParityOptionalFixtures, R50DefaultMatchesUpstream) {
  const auto dir = optional_fixture("detr/r50_default");
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  expect_parity(dir);
}

TEST(ParityOptionalFixtures, TrainStepsTinyR18StoredWeightsReplayUpstreamOptimizer) {
  const auto dir = optional_fixture("train_steps/tiny_r18");
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  expect_train_parity(dir);
}
