// oneDNN's Winograd 3x3 convolutions (models/winograd_conv.h) against LibTorch's direct kernels and a
// float64 reference: forward, input, weight and bias gradients, both memory formats.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "models/backbone.h"
#include "models/winograd_conv.h"

namespace {

using detr::models::ConvAlgorithm;

double rel_max(const torch::Tensor& a, const torch::Tensor& ref) {
  return ((a.to(torch::kDouble) - ref).abs().max() / ref.abs().max()).item<double>();
}

struct Grads {
  torch::Tensor y, gx, gw, gb;
};

// y = conv(x, w, b) and the gradients of sum(y * r) (a fixed random cotangent).
template <class Conv>
Grads run(Conv conv, torch::Tensor x, torch::Tensor w, torch::Tensor b, const torch::Tensor& r) {
  x = x.detach().requires_grad_(true);
  w = w.detach().requires_grad_(true);
  b = b.detach().requires_grad_(true);
  auto y = conv(x, w, b);
  (y * r.to(y.dtype())).sum().backward();
  return {y.detach(), x.grad(), w.grad(), b.grad()};
}

class WinogradConv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detr::models::winograd_available())
      GTEST_SKIP() << "this build or CPU has no oneDNN Winograd kernels (oneDNN has them for AVX-512)";
  }
};

TEST_F(WinogradConv, MatchesFloat64ReferenceLikeDirect) {
  torch::manual_seed(0);
  for (const bool channels_last : {false, true}) {
    // [B, C, H, W] with odd sizes (partial Winograd tiles), ReLU-like input as in a ResNet.
    auto x = torch::randn({2, 32, 23, 37}).relu();
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    auto w = torch::randn({48, 32, 3, 3}) * 0.05;
    auto b = torch::randn({48});
    auto r = torch::randn({2, 48, 23, 37});
    auto conv = [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
      return torch::conv2d(x, w, b, 1, 1);
    };
    const auto ref = run(conv, x.to(torch::kDouble), w.to(torch::kDouble), b.to(torch::kDouble), r);
    const auto direct = run(conv, x, w, b, r);
    const auto wino = run(detr::models::winograd_conv2d, x, w, b, r);
    const char* names[] = {"y", "dx", "dw", "db"};
    const torch::Tensor refs[] = {ref.y, ref.gx, ref.gw, ref.gb};
    const torch::Tensor ds[] = {direct.y, direct.gx, direct.gw, direct.gb};
    const torch::Tensor ws[] = {wino.y, wino.gx, wino.gw, wino.gb};
    for (int i = 0; i < 4; ++i) {
      const double d = rel_max(ds[i], refs[i]), v = rel_max(ws[i], refs[i]);
      std::printf("%s %s: max|err|/max|ref| direct %.2e, winograd %.2e\n",
                  channels_last ? "channels_last" : "contiguous", names[i], d, v);
      // float32 rounding: a sum of 288-1700 products carries relative errors of ~1e-7..1e-6.
      EXPECT_LT(v, 1e-5) << names[i];
    }
    EXPECT_EQ(wino.y.is_contiguous(torch::MemoryFormat::ChannelsLast) && !wino.y.is_contiguous(), channels_last)
        << "the output keeps the input's memory format, as torch::conv2d does";
    EXPECT_TRUE(
        wino.gx.is_contiguous(channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous));
  }
}

TEST_F(WinogradConv, OnlyRequestedGradientsAndUndefinedBias) {
  torch::manual_seed(1);
  auto x = torch::randn({1, 16, 9, 9});  // a frozen layer's input: no gradient wanted
  auto w = torch::randn({16, 16, 3, 3}).requires_grad_(true);
  auto y = detr::models::winograd_conv2d(x, w, torch::Tensor());
  y.sum().backward();
  EXPECT_FALSE(x.grad().defined());
  auto w_ref = w.detach().clone().requires_grad_(true);
  torch::conv2d(x, w_ref, {}, 1, 1).sum().backward();
  const double dev = rel_max(w.grad(), w_ref.grad().to(torch::kDouble));
  std::printf("dw without bias and without dx: max|err|/max|ref| %.2e\n", dev);
  EXPECT_LT(dev, 1e-5);

  torch::NoGradGuard no_grad;  // frozen weights and input (evaluation): forward only
  auto y2 = detr::models::winograd_conv2d(x, w.detach(), torch::Tensor());
  EXPECT_LT(rel_max(y2, torch::conv2d(x, w.detach(), {}, 1, 1).to(torch::kDouble)), 1e-5);
}

TEST_F(WinogradConv, BackboneFollowsItsModelsSetting) {
  torch::manual_seed(2);
  detr::models::ResNetBody net("resnet18", false);
  auto x = torch::randn({1, 3, 96, 128}).contiguous(torch::MemoryFormat::ChannelsLast);
  torch::NoGradGuard no_grad;
  net->set_kernels({true, true, ConvAlgorithm::kDirect});
  auto direct = net->forward(x, /*return_all=*/true);
  net->set_kernels({true, true, ConvAlgorithm::kWinograd});
  auto wino = net->forward(x, /*return_all=*/true);
  ASSERT_EQ(direct.size(), wino.size());
  for (size_t l = 0; l < direct.size(); ++l) {
    const double dev = rel_max(wino[l], direct[l].to(torch::kDouble));
    std::printf("resnet18 layer%zu: winograd vs direct max|diff|/max|direct| %.2e\n", l + 1, dev);
    EXPECT_GT(dev, 0.0) << "the Winograd path was not taken";
    EXPECT_LT(dev, 1e-4);
  }
}

}  // namespace

// The dispatcher falls back to LibTorch's kernels, bit for bit, wherever Winograd does not apply.
TEST(WinogradConvDispatch, FallsBackToLibTorchExactly) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 16, 12, 12});
  auto w3 = torch::randn({16, 16, 3, 3});
  auto w1 = torch::randn({16, 16, 1, 1});
  auto b = torch::randn({16});
  struct Case {
    const char* name;
    torch::Tensor x, w;
    int64_t stride, padding, dilation;
  } cases[] = {{"stride 2", x, w3, 2, 1, 1},
               {"1x1", x, w1, 1, 0, 1},
               {"dilation 2", x, w3, 1, 2, 2},
               {"float64", x.to(torch::kDouble), w3.to(torch::kDouble), 1, 1, 1}};
  for (const auto& c : cases) {
    auto bias = b.to(c.x.dtype());
    auto ours =
        detr::models::conv2d(c.x, c.w, bias, {c.stride, c.stride}, {c.padding, c.padding}, {c.dilation, c.dilation}, 1);
    auto ref = torch::conv2d(c.x, c.w, bias, c.stride, c.padding, c.dilation);
    EXPECT_TRUE(torch::equal(ours, ref)) << c.name;
  }
  auto ours = detr::models::conv2d(x, w3, b, {1, 1}, {1, 1}, {1, 1}, 1, ConvAlgorithm::kDirect);
  EXPECT_TRUE(torch::equal(ours, torch::conv2d(x, w3, b, 1, 1))) << "--conv_algorithm direct";
  EXPECT_THROW(detr::models::parse_conv_algorithm("fast"), std::invalid_argument);
  // Inputs LibTorch refuses are refused the same way (never read with the wrong type or size).
  EXPECT_THROW(detr::models::conv2d(x, w3, b.to(torch::kDouble), {1, 1}, {1, 1}, {1, 1}, 1), c10::Error);
  EXPECT_THROW(detr::models::conv2d(x, w3, torch::zeros({3}), {1, 1}, {1, 1}, {1, 1}, 1), c10::Error);
  EXPECT_THROW(detr::models::conv2d(torch::zeros({2, 16, 0, 8}), w3, b, {1, 1}, {1, 1}, {1, 1}, 1), c10::Error);
}
