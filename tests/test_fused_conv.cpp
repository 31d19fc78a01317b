// The backbone's fused inference convolutions (models/fused_conv.h) against the unfused path a model
// with the same weights takes while gradients are recorded: every layer's output, after in-place
// updates of frozen BatchNorms and of the weights and a dtype round trip (the kept folded weights must
// follow), at another input size, and dilated (DC5).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/fused_conv.h"

namespace {

using detr::models::FusedConv;
using detr::models::ResNetBody;

// Every FusedConv of the body (stem, blocks, downsamples).
std::vector<FusedConv*> fused_of(ResNetBody& body) {
  std::vector<FusedConv*> out{body->fused1.get()};
  for (auto& m : body->modules(/*include_self=*/false)) {
    if (auto* b = m->as<detr::models::Bottleneck>())
      out.insert(out.end(), {b->fused1.get(), b->fused2.get(), b->fused3.get(), b->fused_downsample.get()});
    if (auto* b = m->as<detr::models::BasicBlock>())
      out.insert(out.end(), {b->fused1.get(), b->fused2.get(), b->fused_downsample.get()});
  }
  return out;
}

int64_t fused_runs(ResNetBody& body) {
  int64_t n = 0;
  for (auto* f : fused_of(body)) n += f->fused_forwards();
  return n;
}

// The unfused path's outputs for `body`'s weights: a separate body (its own kept copies untouched)
// holding the same values, run while recording gradients.
std::vector<torch::Tensor> unfused_outputs(ResNetBody& body,
                                           const std::string& name,
                                           bool dilation,
                                           const torch::Tensor& x) {
  ResNetBody ref(name, dilation);
  ref->set_kernels({});
  {
    torch::NoGradGuard no_grad;
    auto params = ref->named_parameters(), buffers = ref->named_buffers();
    for (const auto& p : body->named_parameters()) params[p.key()].copy_(p.value());
    for (const auto& b : body->named_buffers()) buffers[b.key()].copy_(b.value());
  }
  auto out = ref->forward(x, /*return_all=*/true);
  for (auto& t : out) t = t.detach();
  return out;
}

// The largest deviation of `body`'s fused outputs (no gradient recorded) from the unfused path's,
// relative to each layer's largest magnitude.
double deviation(
    ResNetBody& body, const std::string& name, bool dilation, const torch::Tensor& x, const std::string& what) {
  const auto unfused = unfused_outputs(body, name, dilation, x);
  const int64_t before = fused_runs(body);
  std::vector<torch::Tensor> fused;
  {
    torch::NoGradGuard no_grad;
    fused = body->forward(x, /*return_all=*/true);
  }
  const int64_t ran = fused_runs(body) - before;
  if (FusedConv::available()) {
    EXPECT_GT(ran, 0) << what << ": the fused path never ran";
  }
  double worst = 0;
  for (size_t l = 0; l < fused.size(); ++l) {
    EXPECT_TRUE(fused[l].is_contiguous(torch::MemoryFormat::ChannelsLast)) << what << " layer " << l + 1;
    worst = std::max(worst, ((fused[l] - unfused[l]).abs().max() / unfused[l].abs().max()).item<double>());
  }
  std::printf("%-34s %3ld fused convolutions, largest deviation %.3g (relative to each layer's largest value)\n",
              what.c_str(), static_cast<long>(ran), worst);
  return worst;
}

TEST(FusedConv, BackboneAtInferenceEqualsTheUnfusedPath) {
  if (!FusedConv::available()) GTEST_SKIP() << "this build has no oneDNN: the backbone always runs unfused";
  torch::manual_seed(0);
  for (const std::string name : {"resnet50", "resnet18"}) {
    ResNetBody body(name, /*dilation=*/false);
    body->set_kernels({});
    auto x = torch::randn({2, 3, 96, 128}).contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_LT(deviation(body, name, false, x, name), 1e-5);
    // The kept folded weights follow an in-place update of a frozen BatchNorm's statistics.
    {
      torch::NoGradGuard no_grad;
      body->bn1->running_mean.add_(0.5);
      body->named_buffers()["layer1.0.bn2.running_var"].mul_(2);
    }
    EXPECT_LT(deviation(body, name, false, x, name + ", statistics changed"), 1e-5);
    auto other = torch::randn({1, 3, 64, 80}).contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_LT(deviation(body, name, false, other, name + ", another size"), 1e-5);
  }
  ResNetBody dc5("resnet50", /*dilation=*/true);
  dc5->set_kernels({});
  EXPECT_LT(deviation(dc5, "resnet50", true, torch::randn({1, 3, 96, 96}).contiguous(torch::MemoryFormat::ChannelsLast),
                      "resnet50 DC5"),
            1e-5);
}

TEST(FusedConv, GradientsAndOtherInputsTakeTheUnfusedPath) {
  // Recording gradients, a contiguous (NCHW) input, float64 weights, or upstream's exact order
  // (fold_bn off): never fused.
  ResNetBody body("resnet18", /*dilation=*/false);
  body->set_kernels({});
  const auto x = torch::randn({1, 3, 64, 64});
  body->forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
  {
    torch::NoGradGuard no_grad;
    body->forward(x);  // NCHW
    body->to(torch::kDouble);
    body->forward(x.to(torch::kDouble).contiguous(torch::MemoryFormat::ChannelsLast));
    body->to(torch::kFloat);
    detr::models::ConvKernels upstream_order;
    upstream_order.fold_bn = false;
    body->set_kernels(upstream_order);
    body->forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
  }
  EXPECT_EQ(fused_runs(body), 0);
}

TEST(FusedConv, KeptWeightsFollowLoadsAndConversions) {
  // The folded weights are kept between forwards; a weight loaded in place (copy_, as load_state_dict
  // does) or a round trip through another dtype (Module::to swaps the storage) must be seen.
  if (!FusedConv::available()) GTEST_SKIP() << "this build has no oneDNN: the backbone always runs unfused";
  torch::manual_seed(1);
  ResNetBody body("resnet50", /*dilation=*/false);
  body->set_kernels({});
  const auto x = torch::randn({1, 3, 64, 96}).contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_LT(deviation(body, "resnet50", false, x, "resnet50"), 1e-5);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : body->parameters()) p.copy_(torch::randn_like(p) * 0.05);
  }
  EXPECT_LT(deviation(body, "resnet50", false, x, "resnet50, weights loaded in place"), 1e-5);
  {
    torch::NoGradGuard no_grad;
    body->to(torch::kHalf);
    body->to(torch::kFloat);  // values rounded to half: other weights in new storages
  }
  EXPECT_LT(deviation(body, "resnet50", false, x, "resnet50, through float16 and back"), 1e-5);
  // Training again (a forward that records gradients) drops the kept copies.
  const auto held = [&] {
    int64_t n = 0;
    for (auto* f : fused_of(body)) n += f->holds_weights();
    return n;
  };
  {
    torch::NoGradGuard no_grad;
    body->forward(x);
  }
  EXPECT_EQ(held(), 53);
  body->forward(x);
  EXPECT_EQ(held(), 0);
}

}  // namespace
