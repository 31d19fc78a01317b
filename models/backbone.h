// Backbone modules (upstream models/backbone.py): FrozenBatchNorm2d, torchvision's ResNet body,
// Backbone and Joiner. Registered names give upstream's keys: backbone.0.body.layer1.0.conv1.weight, ...
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "models/fused_conv.h"
#include "models/winograd_conv.h"
#include "util/misc.h"

namespace detr::models {

// BatchNorm2d with fixed statistics and affine parameters, all buffers (no num_batches_tracked).
// y = x * scale + bias with scale = weight * rsqrt(running_var + 1e-5), bias = bias - running_mean * scale.
class FrozenBatchNorm2dImpl : public torch::nn::Module {
 public:
  explicit FrozenBatchNorm2dImpl(int64_t n);
  torch::Tensor forward(const torch::Tensor& x);  // [B, n, H, W]
  // The affine map as {scale [n], shift [n]}.
  std::pair<torch::Tensor, torch::Tensor> scale_shift() const;

  torch::Tensor weight, bias, running_mean, running_var;  // [n] buffers
};
TORCH_MODULE(FrozenBatchNorm2d);

// bn(conv(x)) computed as one convolution: the frozen affine map is folded into the (possibly
// trainable) conv weight and a bias, which saves two passes over every activation. Gradients reach the
// conv weight through the fold. Equal to the unfolded form up to float32 rounding.
torch::Tensor conv_bn(const torch::nn::Conv2d& conv,
                      const FrozenBatchNorm2d& bn,
                      const torch::Tensor& x,
                      ConvAlgorithm algorithm = ConvAlgorithm::kWinograd);

// How one model's backbone convolutions run: a setting of that model instance, chosen by its owner
// (the run's --conv_algorithm; the parity tool's upstream order). All choices compute the same
// function up to float32 rounding.
struct ConvKernels {
  bool fold_bn = true;        // conv_bn, or upstream's exact order: conv, then FrozenBatchNorm2d
  bool channels_last = true;  // run the ResNet in NHWC (faster with oneDNN and cuDNN)
  ConvAlgorithm algorithm = ConvAlgorithm::kWinograd;  // CPU 3x3 convolutions
};

// torchvision's BasicBlock (resnet18/34) and Bottleneck (resnet50/101, stride on conv2, "v1.5").
class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential downsample, int64_t dilation);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  FrozenBatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
  void set_kernels(const ConvKernels& kernels) { kernels_ = kernels; }
  // Inference kernels of conv1, conv2 and the downsample (fused_conv.h); not parameters.
  std::shared_ptr<FusedConv> fused1 = std::make_shared<FusedConv>(), fused2 = std::make_shared<FusedConv>(),
                             fused_downsample = std::make_shared<FusedConv>();

 private:
  ConvKernels kernels_;
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential downsample, int64_t dilation);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  FrozenBatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
  void set_kernels(const ConvKernels& kernels) { kernels_ = kernels; }
  // Inference kernels of conv1..conv3 and the downsample (fused_conv.h); not parameters.
  std::shared_ptr<FusedConv> fused1 = std::make_shared<FusedConv>(), fused2 = std::make_shared<FusedConv>(),
                             fused3 = std::make_shared<FusedConv>(), fused_downsample = std::make_shared<FusedConv>();

 private:
  ConvKernels kernels_;
};
TORCH_MODULE(Bottleneck);

// The ResNet trunk up to layer4 (torchvision's resnet without avgpool/fc, as IntermediateLayerGetter).
class ResNetBodyImpl : public torch::nn::Module {
 public:
  ResNetBodyImpl(const std::string& name, bool dilation, bool init_weights = true);
  // x: [B, 3, H, W] -> the outputs of layer1..layer4 ([B, C_l, H/s_l, W/s_l]); all four only if
  // return_all, else just layer4's.
  std::vector<torch::Tensor> forward(const torch::Tensor& x, bool return_all = false);

  torch::nn::Conv2d conv1{nullptr};
  FrozenBatchNorm2d bn1{nullptr};
  std::shared_ptr<FusedConv> fused1 = std::make_shared<FusedConv>();  // the stem's inference kernel
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  int64_t num_channels = 0;                      // layer4's: 512 (resnet18/34) or 2048
  std::vector<int64_t> layer_channels;           // layer1..layer4's: 64..512 (resnet18/34) or 256..2048
  void set_kernels(const ConvKernels& kernels);  // every block's

 private:
  ConvKernels kernels_;
  torch::nn::Sequential make_layer(bool bottleneck, int64_t planes, int64_t blocks, int64_t stride, bool dilate);
  int64_t inplanes_ = 64;
  int64_t dilation_ = 1;
};
TORCH_MODULE(ResNetBody);

struct BackboneOptions {
  TORCH_ARG(std::string, name) = "resnet50";
  TORCH_ARG(bool, train_backbone) = true;  // lr_backbone > 0
  TORCH_ARG(bool, dilation) = false;
  // false: the weights are loaded next, so torchvision's kaiming_normal_ pass is skipped (LibTorch's
  // own Conv2d init still runs).
  TORCH_ARG(bool, init_weights) = true;
};

// Backbone = ResNet body + mask downsampling. Registered as "body".
class BackboneImpl : public torch::nn::Module {
 public:
  explicit BackboneImpl(BackboneOptions options);
  // Returns layer4's features [B, C, h, w] with the padding mask resized to them [B, h, w].
  util::NestedTensor forward(const util::NestedTensor& samples);
  // Upstream's return_interm_layers (--masks): layer1..layer4's features [B, C_l, H/s_l, W/s_l]
  // (s_l = 4, 8, 16, 32; layer4 at 16 with dilation), each with the padding mask resized to it.
  std::vector<util::NestedTensor> forward_levels(const util::NestedTensor& samples);
  void set_kernels(const ConvKernels& kernels);

  BackboneOptions options;
  ResNetBody body{nullptr};
  int64_t num_channels = 0;

 private:
  ConvKernels kernels_;
  std::vector<util::NestedTensor> run_body(const util::NestedTensor& samples, bool return_all);
};
TORCH_MODULE(Backbone);

}  // namespace detr::models
