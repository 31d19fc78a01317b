#pragma once
// The backbone's convolutions at inference on the CPU, each one oneDNN primitive: the convolution
// with its FrozenBatchNorm2d folded in (as conv_bn), then the residual block's sum and ReLU as
// post-ops, so that each output is written once. LibTorch's path writes the convolution's output,
// then reads and writes it again for add_ and for relu_, and folds and reorders every weight on
// every forward; here the folded weights are reordered into the primitive's layout once per weight
// version and kept while the model infers (one copy of the backbone's weights, larger for Winograd's
// transformed 3x3 kernels: R50's take 0.19 GB), dropped as soon as a forward records gradients.
//
// The outputs equal the unfused path's up to float32 rounding: oneDNN picks its inference kernels
// (for some layers Winograd's F(2x2, 3x3) instead of F(4x4, 3x3), and for the convolutions with the
// residual sum another 1x1 kernel); the tests print the deviation.
//
// It applies to float32 channels_last CPU tensors with no gradient recorded and no autocast, in a
// build with oneDNN; elsewhere forward() returns an undefined tensor and the caller takes the
// unfused path.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "models/winograd_conv.h"

namespace detr::models {

struct ConvGeometry {
  std::vector<int64_t> stride, padding, dilation;  // 2 each (padding symmetric)
};

class FusedConv {
 public:
  FusedConv();
  ~FusedConv();
  FusedConv(const FusedConv&) = delete;
  FusedConv& operator=(const FusedConv&) = delete;

  using FoldedWeights = std::function<std::pair<torch::Tensor, torch::Tensor>()>;  // w [O, C, kh, kw], b [O]

  // relu?(conv(x, w) + b + residual?) for x [B, C, H, W] and residual [B, O, h, w] (or undefined),
  // channels_last. `sources`: the tensors w and b are computed from, the conv weight first (its
  // shape is the kernel's); `fold` computes them only when a source changed (another tensor or an
  // in-place update) since the kept copy was made. Undefined where this path does not apply.
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& residual,
                        bool relu,
                        const std::vector<torch::Tensor>& sources,
                        const FoldedWeights& fold,
                        const ConvGeometry& geometry,
                        ConvAlgorithm algorithm);

  // Drops the kept weights: the backbone calls it on every forward that records gradients (training),
  // so that they cost memory only between inferences.
  void release_weights();
  bool holds_weights() const;
  int64_t fused_forwards() const;  // how many forward() calls ran fused (for tests and benchmarks)
  static bool available();         // whether this build has the fused kernels (oneDNN)

 private:
  struct State;
  mutable std::mutex mutex_;
  std::unique_ptr<State> state_;
};

}  // namespace detr::models
