// The model-arithmetic count behind detr_bench's FLOP utilisation, against published figures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "src/tools/flops.h"

using detr::models::model_flops;
using detr::models::ModelConfig;

// torchvision's table (GFLOPS there are multiply-adds at 224x224, fc included): resnet18 1.81,
// resnet34 3.66, resnet50 4.09, resnet101 7.80.
TEST(Flops, ResNetsMatchTorchvisionsTable) {
  const struct {
    const char* name;
    double gmacs;
    int64_t fc_in;
  } nets[] = {{"resnet18", 1.81, 512}, {"resnet34", 3.66, 512}, {"resnet50", 4.09, 2048}, {"resnet101", 7.80, 2048}};
  for (const auto& n : nets) {
    ModelConfig c;
    c.backbone = n.name;
    const auto f = model_flops(c, 224, 224);
    const double gmacs = (f.backbone_frozen + f.backbone_trained) / 2 / 1e9 + n.fc_in * 1000 / 1e9;
    std::printf("%s at 224x224: %.3f GMACs (torchvision: %.2f)\n", n.name, gmacs, n.gmacs);
    EXPECT_NEAR(gmacs, n.gmacs, 0.006 + 0.001 * n.gmacs) << n.name;  // the table's rounding
  }
}

// The DETR paper's Table 1 (fvcore multiply-adds, averaged over COCO val images): DETR 86 G,
// DETR-DC5 187 G, DETR-R101 152 G, DETR-DC5-R101 253 G. At 800x1200, about such an image's padded size.
TEST(Flops, DetrMatchesThePapersTable) {
  const struct {
    const char* backbone;
    bool dc5;
    double gmacs;
  } models[] = {{"resnet50", false, 86}, {"resnet50", true, 187}, {"resnet101", false, 152}, {"resnet101", true, 253}};
  std::vector<double> ratios;
  for (const auto& m : models) {
    ModelConfig c;
    c.backbone = m.backbone;
    c.dilation = m.dc5;
    const double gmacs = model_flops(c, 800, 1200).forward() / 2 / 1e9;
    ratios.push_back(gmacs / m.gmacs);
    std::printf("DETR %s%s at 800x1200: %.1f GMACs (paper: %.0f, ratio %.3f)\n", m.backbone, m.dc5 ? "-DC5" : "", gmacs,
                m.gmacs, ratios.back());
    EXPECT_NEAR(ratios.back(), 1.0, 0.1) << m.backbone << (m.dc5 ? " DC5" : "");
  }
  // One image size stands for the paper's average: the four models' ratios must agree closely, which
  // checks the backbones, the dilated layer4 and the transformer's share against each other.
  for (double r : ratios) EXPECT_NEAR(r / ratios[0], 1.0, 0.015);
}

TEST(Flops, TrainingCountsBackwardOnlyForTrainedLayers) {
  ModelConfig c;
  const auto f = model_flops(c, 800, 1066);
  EXPECT_GT(f.backbone_frozen, 0);
  EXPECT_DOUBLE_EQ(f.train(), f.backbone_frozen + 3 * (f.forward() - f.backbone_frozen));
  c.train_backbone = false;  // the whole ResNet frozen
  const auto frozen = model_flops(c, 800, 1066);
  EXPECT_EQ(frozen.backbone_trained, 0);
  EXPECT_DOUBLE_EQ(frozen.backbone_frozen, f.backbone_frozen + f.backbone_trained);
  EXPECT_LT(frozen.train(), f.train());
  // Encoder attention grows with the square of the tokens: twice the side, more than 4x the transformer.
  EXPECT_GT(model_flops(c, 1600, 2132).transformer, 4 * f.transformer);
}
