#pragma once
// 3x3 stride-1 convolutions through oneDNN's Winograd kernels (F(4x4, 3x3)) on CPUs that have them.
//
// The backbone's 3x3 stride-1 convolutions are most of a CPU training step, and LibTorch already runs
// them through oneDNN's direct kernels at close to the machine's peak arithmetic. Winograd's
// algorithm does about a quarter of the multiplications: forward, input gradient and weight gradient
// each run 2.3-3x faster on AVX-512 CPUs. The results differ from the direct kernels' at float32
// rounding (a few units in the last place of the accumulated sum; the tests print the deviation).
//
// `conv2d()` is a drop-in for torch::conv2d: it takes the Winograd path only where that applies
// (CPU float32 tensors, 3x3, stride 1, padding 1, dilation 1, one group, no autocast, a oneDNN with
// Winograd kernels for this CPU and `algorithm` kWinograd) and calls torch::conv2d otherwise.
// No double backward (DETR needs none).

#include <torch/torch.h>

#include <string>

namespace detr::models {

enum class ConvAlgorithm { kDirect, kWinograd };

// kWinograd still falls back to LibTorch's kernels wherever Winograd does not apply.
ConvAlgorithm parse_conv_algorithm(const std::string& name);  // "direct" | "winograd"
std::string to_string(ConvAlgorithm algorithm);

// Whether this build and CPU have oneDNN's Winograd kernels (checked once).
bool winograd_available();

// torch::conv2d with the same arguments; x [B, C, H, W] (any memory format), weight [O, C, kh, kw],
// bias [O] or undefined.
torch::Tensor conv2d(const torch::Tensor& x,
                     const torch::Tensor& weight,
                     const torch::Tensor& bias,
                     torch::IntArrayRef stride,
                     torch::IntArrayRef padding,
                     torch::IntArrayRef dilation,
                     int64_t groups,
                     ConvAlgorithm algorithm = ConvAlgorithm::kWinograd);

// The Winograd path itself, differentiable in x, weight and bias; TORCH_CHECKs that it applies.
torch::Tensor winograd_conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace detr::models
