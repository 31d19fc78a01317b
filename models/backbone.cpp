#include "models/backbone.h"

#include "models/winograd_conv.h"

#include <cmath>

namespace detr::models {

namespace F = torch::nn::functional;

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t dilation = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(padding).dilation(dilation).bias(false));
}

struct Arch {
  bool bottleneck;
  std::vector<int64_t> blocks;
};

Arch arch_of(const std::string& name) {
  if (name == "resnet18") return {false, {2, 2, 2, 2}};
  if (name == "resnet34") return {false, {3, 4, 6, 3}};
  if (name == "resnet50") return {true, {3, 4, 6, 3}};
  if (name == "resnet101") return {true, {3, 4, 23, 3}};
  throw std::invalid_argument("backbone '" + name + "' is not one of resnet18, resnet34, resnet50, resnet101");
}

}  // namespace

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t n) {
  weight = register_buffer("weight", torch::ones(n));
  bias = register_buffer("bias", torch::zeros(n));
  running_mean = register_buffer("running_mean", torch::zeros(n));
  running_var = register_buffer("running_var", torch::ones(n));
}

std::pair<torch::Tensor, torch::Tensor> FrozenBatchNorm2dImpl::scale_shift() const {
  constexpr double eps = 1e-5;  // hard-coded upstream
  auto scale = weight * (running_var + eps).rsqrt();
  return {scale, bias - running_mean * scale};
}

namespace {
// Every backbone conv is "same"-padded: padding = dilation * (kernel - 1) / 2 (7x7: 3, 3x3: dilation).
ConvGeometry geometry_of(const torch::nn::Conv2d& conv) {
  const auto& o = conv->options;
  const auto k = o.kernel_size(), d = o.dilation(), s = o.stride();
  return {{s->at(0), s->at(1)}, {d->at(0) * (k->at(0) - 1) / 2, d->at(1) * (k->at(1) - 1) / 2}, {d->at(0), d->at(1)}};
}

// The conv weight with the frozen affine map folded in, and the bias: [O, C, kh, kw], [O].
std::pair<torch::Tensor, torch::Tensor> folded(const torch::nn::Conv2d& conv, const FrozenBatchNorm2d& bn) {
  auto [scale, shift] = bn->scale_shift();
  return {conv->weight * scale.reshape({-1, 1, 1, 1}), shift};
}
}  // namespace

torch::Tensor conv_bn(const torch::nn::Conv2d& conv,
                      const FrozenBatchNorm2d& bn,
                      const torch::Tensor& x,
                      ConvAlgorithm algorithm) {
  const auto [w, shift] = folded(conv, bn);
  const auto g = geometry_of(conv);
  return conv2d(x, w, shift, g.stride, g.padding, g.dilation, conv->options.groups(),
                algorithm);  // Winograd where it applies
}

torch::Tensor FrozenBatchNorm2dImpl::forward(const torch::Tensor& x) {
  constexpr double eps = 1e-5;  // hard-coded upstream
  auto w = weight.reshape({1, -1, 1, 1});
  auto b = bias.reshape({1, -1, 1, 1});
  auto rv = running_var.reshape({1, -1, 1, 1});
  auto rm = running_mean.reshape({1, -1, 1, 1});
  auto scale = w * (rv + eps).rsqrt();
  auto shift = b - rm * scale;
  return x * scale + shift;
}

BasicBlockImpl::BasicBlockImpl(
    int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential ds, int64_t dilation) {
  TORCH_CHECK(dilation == 1, "Dilation > 1 not supported in BasicBlock, got ", dilation);
  conv1 = register_module("conv1", conv(inplanes, planes, 3, stride, 1));
  bn1 = register_module("bn1", FrozenBatchNorm2d(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", FrozenBatchNorm2d(planes));
  if (ds) downsample = register_module("downsample", ds);
}

namespace {
// bn(conv(x)), then + residual (if defined) and ReLU (if relu): at inference on the CPU one fused
// oneDNN primitive (fused_conv.h); else conv_bn (or upstream's exact order) and a pass for each.
torch::Tensor conv_bn_act(const torch::nn::Conv2d& conv,
                          const FrozenBatchNorm2d& bn,
                          FusedConv& fused,
                          const torch::Tensor& x,
                          const ConvKernels& k,
                          const torch::Tensor& residual = {},
                          bool relu = false) {
  if (torch::GradMode::is_enabled()) {
    fused.release_weights();  // training: the kept copy goes, and nothing is fused
  } else if (k.fold_bn) {
    auto y = fused.forward(
        x, residual, relu, {conv->weight, bn->weight, bn->bias, bn->running_mean, bn->running_var},
        [&] { return folded(conv, bn); }, geometry_of(conv), k.algorithm);
    if (y.defined()) return y;
  }
  auto y = k.fold_bn ? conv_bn(conv, bn, x, k.algorithm) : bn.ptr()->forward(conv.ptr()->forward(x));
  if (residual.defined()) y.add_(residual);
  return relu ? y.relu_() : y;
}

// downsample = Sequential(conv 1x1, FrozenBatchNorm2d), folded like the others.
torch::Tensor identity_of(const torch::nn::Sequential& downsample,
                          FusedConv& fused,
                          const torch::Tensor& x,
                          const ConvKernels& k) {
  if (!downsample) return x;
  auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(downsample->ptr(0));
  FrozenBatchNorm2d bn(std::dynamic_pointer_cast<FrozenBatchNorm2dImpl>(downsample->ptr(1)));
  return conv_bn_act(torch::nn::Conv2d(conv), bn, fused, x, k);
}
}  // namespace

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = conv_bn_act(conv1, bn1, *fused1, x, kernels_, {}, /*relu=*/true);
  const auto identity = identity_of(downsample, *fused_downsample, x, kernels_);
  return conv_bn_act(conv2, bn2, *fused2, out, kernels_, identity, /*relu=*/true);
}

BottleneckImpl::BottleneckImpl(
    int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential ds, int64_t dilation) {
  const int64_t width = planes;  // base_width 64, groups 1
  conv1 = register_module("conv1", conv(inplanes, width, 1, 1, 0));
  bn1 = register_module("bn1", FrozenBatchNorm2d(width));
  conv2 = register_module("conv2", conv(width, width, 3, stride, dilation, dilation));
  bn2 = register_module("bn2", FrozenBatchNorm2d(width));
  conv3 = register_module("conv3", conv(width, planes * expansion, 1, 1, 0));
  bn3 = register_module("bn3", FrozenBatchNorm2d(planes * expansion));
  if (ds) downsample = register_module("downsample", ds);
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  auto out = conv_bn_act(conv1, bn1, *fused1, x, kernels_, {}, /*relu=*/true);
  out = conv_bn_act(conv2, bn2, *fused2, out, kernels_, {}, /*relu=*/true);
  const auto identity = identity_of(downsample, *fused_downsample, x, kernels_);
  return conv_bn_act(conv3, bn3, *fused3, out, kernels_, identity, /*relu=*/true);
}

ResNetBodyImpl::ResNetBodyImpl(const std::string& name, bool dilation, bool init_weights) {
  const auto arch = arch_of(name);
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1 = register_module("bn1", FrozenBatchNorm2d(64));
  layer1 = register_module("layer1", make_layer(arch.bottleneck, 64, arch.blocks[0], 1, false));
  layer2 = register_module("layer2", make_layer(arch.bottleneck, 128, arch.blocks[1], 2, false));
  layer3 = register_module("layer3", make_layer(arch.bottleneck, 256, arch.blocks[2], 2, false));
  layer4 = register_module("layer4", make_layer(arch.bottleneck, 512, arch.blocks[3], 2, dilation));
  num_channels = arch.bottleneck ? 2048 : 512;
  for (int64_t planes : {64, 128, 256, 512}) layer_channels.push_back(planes * (arch.bottleneck ? 4 : 1));
  // torchvision's init: kaiming_normal_(fan_out, relu) on every conv; BN buffers are 1/0 already.
  if (!init_weights) return;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::NoGradGuard no_grad;
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

// torchvision's _make_layer: the first block keeps the previous dilation; with dilate the stride
// becomes dilation for the following blocks.
torch::nn::Sequential ResNetBodyImpl::make_layer(
    bool bottleneck, int64_t planes, int64_t blocks, int64_t stride, bool dilate) {
  const int64_t expansion = bottleneck ? BottleneckImpl::expansion : BasicBlockImpl::expansion;
  const int64_t previous_dilation = dilation_;
  if (dilate) {
    dilation_ *= stride;
    stride = 1;
  }
  torch::nn::Sequential downsample{nullptr};
  if (stride != 1 || inplanes_ != planes * expansion) {
    downsample =
        torch::nn::Sequential(conv(inplanes_, planes * expansion, 1, stride, 0), FrozenBatchNorm2d(planes * expansion));
  }
  torch::nn::Sequential layer;
  auto add = [&](int64_t s, torch::nn::Sequential ds, int64_t d) {
    if (bottleneck)
      layer->push_back(Bottleneck(inplanes_, planes, s, ds, d));
    else
      layer->push_back(BasicBlock(inplanes_, planes, s, ds, d));
    inplanes_ = planes * expansion;
  };
  add(stride, downsample, previous_dilation);
  for (int64_t i = 1; i < blocks; ++i) add(1, nullptr, dilation_);
  return layer;
}

void ResNetBodyImpl::set_kernels(const ConvKernels& kernels) {
  kernels_ = kernels;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* b = m->as<BasicBlock>()) b->set_kernels(kernels);
    if (auto* b = m->as<Bottleneck>()) b->set_kernels(kernels);
  }
}

std::vector<torch::Tensor> ResNetBodyImpl::forward(const torch::Tensor& x, bool return_all) {
  auto y = conv_bn_act(conv1, bn1, *fused1, x, kernels_, {}, /*relu=*/true);
  y = F::max_pool2d(y, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  std::vector<torch::Tensor> outs;
  for (auto* layer : {&layer1, &layer2, &layer3, &layer4}) {
    y = (*layer)->forward(y);
    if (return_all) outs.push_back(y);
  }
  if (!return_all) outs.push_back(y);
  return outs;
}

BackboneImpl::BackboneImpl(BackboneOptions opts) : options(std::move(opts)) {
  body = register_module("body", ResNetBody(options.name(), options.dilation(), options.init_weights()));
  num_channels = body->num_channels;
  // Upstream: only layer2..layer4 train, and nothing when lr_backbone <= 0. (BN is all buffers.)
  for (auto& p : body->named_parameters()) {
    const auto& n = p.key();
    const bool trainable =
        options.train_backbone() && (n.find("layer2") != std::string::npos || n.find("layer3") != std::string::npos ||
                                     n.find("layer4") != std::string::npos);
    p.value().set_requires_grad(trainable);
  }
}

void BackboneImpl::set_kernels(const ConvKernels& kernels) {
  kernels_ = kernels;
  body->set_kernels(kernels);
}

namespace {
// The padding mask [B, H, W] resized to x [B, C, h, w] by legacy 'nearest' (src = floor(dst * in / out)),
// as F.interpolate's default mode.
torch::Tensor mask_for(const torch::Tensor& mask, const torch::Tensor& x) {
  return F::interpolate(
             mask.unsqueeze(0).to(torch::kFloat),
             F::InterpolateFuncOptions().size(std::vector<int64_t>{x.size(-2), x.size(-1)}).mode(torch::kNearest))
      .to(torch::kBool)[0];
}
}  // namespace

std::vector<util::NestedTensor> BackboneImpl::run_body(const util::NestedTensor& samples, bool return_all) {
  // channels_last lets oneDNN / cuDNN skip layout reorders around every convolution.
  const bool cl = kernels_.channels_last;
  auto in = cl ? samples.tensors.contiguous(torch::MemoryFormat::ChannelsLast) : samples.tensors;
  std::vector<util::NestedTensor> out;
  for (auto& x : body->forward(in, return_all)) {  // [B, C, h, w] each
    if (cl) x = x.contiguous();
    out.push_back({x, mask_for(samples.mask, x)});
  }
  return out;
}

util::NestedTensor BackboneImpl::forward(const util::NestedTensor& samples) {
  return run_body(samples, /*return_all=*/false).back();
}

std::vector<util::NestedTensor> BackboneImpl::forward_levels(const util::NestedTensor& samples) {
  return run_body(samples, /*return_all=*/true);
}

}  // namespace detr::models
