#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/box_ops.h"
#include "util/misc.h"

using namespace detr::util;

TEST(BoxOps, CxcywhXyxyRoundTrip) {
  auto boxes = torch::rand({50, 4}) * 0.5 + 0.1;
  auto back = box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(boxes));
  const double dev = (back - boxes).abs().max().item<double>();
  std::cout << "round-trip max deviation " << dev << "\n";
  EXPECT_LT(dev, 1e-6);
  auto xyxy = box_cxcywh_to_xyxy(torch::tensor({{0.5, 0.5, 0.2, 0.4}}));
  EXPECT_TRUE(torch::allclose(xyxy, torch::tensor({{0.4, 0.3, 0.6, 0.7}})));
}

TEST(BoxOps, GeneralizedIouKnownValues) {
  auto a = torch::tensor({{0.0, 0.0, 2.0, 2.0}});
  auto b = torch::tensor({{1.0, 1.0, 3.0, 3.0}, {0.0, 0.0, 2.0, 2.0}, {4.0, 4.0, 5.0, 5.0}});
  auto g = generalized_box_iou(a, b);
  // Overlap 1, union 7, hull 9: 1/7 - 2/9. Identical: 1. Disjoint: 0 - (25 - 5)/25.
  EXPECT_NEAR(g[0][0].item<double>(), 1.0 / 7 - 2.0 / 9, 1e-6);
  EXPECT_NEAR(g[0][1].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(g[0][2].item<double>(), -0.8, 1e-6);
  auto paired = generalized_box_iou_paired(b, b.flip(0));
  auto full = generalized_box_iou(b, b.flip(0)).diag();
  EXPECT_TRUE(torch::equal(paired, full));
}

TEST(BoxOps, DegenerateAndNanBoxesGiveClearErrors) {
  auto good = torch::tensor({{0.0, 0.0, 1.0, 1.0}});
  auto bad = torch::tensor({{0.0, 0.0, 1.0, 1.0}, {0.5, 0.5, 0.2, 0.9}});
  try {
    generalized_box_iou(good, bad);
    FAIL() << "no error for a degenerate box";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("boxes2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("index 1"), std::string::npos) << msg;
  }
  auto nan = torch::full({1, 4}, NAN);
  EXPECT_THROW(generalized_box_iou(nan, good), std::runtime_error);
}

TEST(Misc, NestedTensorPadsBottomRightAndMasksPadding) {
  auto a = torch::ones({3, 4, 5});
  auto b = torch::ones({3, 6, 2}) * 2;
  auto nt = nested_tensor_from_tensor_list({a, b});
  ASSERT_EQ(nt.tensors.sizes(), (std::vector<int64_t>{2, 3, 6, 5}));
  EXPECT_EQ(nt.mask[0].slice(0, 0, 4).slice(1, 0, 5).any().item<bool>(), false);
  EXPECT_EQ(nt.mask[0].slice(0, 4).all().item<bool>(), true);
  EXPECT_EQ(nt.mask[1].slice(1, 2).all().item<bool>(), true);
  EXPECT_EQ(nt.tensors[1].slice(2, 2).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(nt.tensors[1].slice(2, 0, 2).sum().item<double>(), 2.0 * 3 * 6 * 2);
}

TEST(Misc, AccuracyIsZeroWithoutTargets) {
  EXPECT_EQ(accuracy(torch::zeros({0, 5}), torch::zeros({0}, torch::kLong)).item<double>(), 0.0);
  auto logits = torch::tensor({{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}});
  EXPECT_NEAR(accuracy(logits, torch::tensor({1, 1, 1})).item<double>(), 200.0 / 3, 1e-4);
}
