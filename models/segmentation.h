// DETR's segmentation model (upstream models/segmentation.py, `--masks`): DETRsegm wraps a DETR and adds
// a per-query attention map over the encoder's memory (MHAttentionMap) and a small FPN-style convolutional
// head (MaskHeadSmallConv) that turns it into one mask per query at a quarter of the input's resolution.
// Registered names give upstream's keys: detr.<every DETR key>, bbox_attention.q_linear.weight, ...,
// mask_head.lay1.weight, mask_head.gn1.weight, ..., mask_head.adapter1.weight.
// The two mask losses (sigmoid focal and dice) are upstream's functions of the same file.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/detr.h"
#include "models/model_config.h"
#include "util/misc.h"

namespace detr::models {

// A DETRsegm state dict holds its DETR's keys under "detr." (upstream's attribute name), beside
// bbox_attention.* and mask_head.*.
constexpr const char* kDetrKeyPrefix = "detr.";
using StateDict = std::map<std::string, torch::Tensor>;
bool is_segmentation_state(const StateDict& state);
// {the DETR's keys without the prefix, the rest (the mask head's)}.
std::pair<StateDict, StateDict> split_segmentation_state(StateDict state);

struct MHAttentionMapOptions {
  MHAttentionMapOptions(int64_t query_dim, int64_t hidden_dim, int64_t num_heads)
      : query_dim_(query_dim), hidden_dim_(hidden_dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, query_dim);
  TORCH_ARG(int64_t, hidden_dim);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(double, dropout) = 0.0;  // on the attention weights (upstream builds it with 0)
  TORCH_ARG(bool, bias) = true;
};

// A 2D attention that returns only the softmax (no multiplication by a value): each query's attention
// over the feature map, per head. k_linear is applied as a 1x1 convolution.
class MHAttentionMapImpl : public torch::nn::Module {
 public:
  explicit MHAttentionMapImpl(MHAttentionMapOptions options);
  // q: [B, Q, query_dim]; k: [B, query_dim, h, w]; mask: [B, h, w] true = padding (or undefined).
  // Returns [B, Q, num_heads, h, w], softmax over each (query, head)'s h*w positions.
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& mask = {});

  MHAttentionMapOptions options;
  torch::nn::Linear q_linear{nullptr}, k_linear{nullptr};
  double normalize_fact;  // (hidden_dim / num_heads)^-0.5
};
TORCH_MODULE(MHAttentionMap);

struct MaskHeadSmallConvOptions {
  MaskHeadSmallConvOptions(int64_t dim, std::vector<int64_t> fpn_dims, int64_t context_dim)
      : dim_(dim), fpn_dims_(std::move(fpn_dims)), context_dim_(context_dim) {}
  TORCH_ARG(int64_t, dim);                    // hidden_dim + nheads
  TORCH_ARG(std::vector<int64_t>, fpn_dims);  // channels of layer3, layer2, layer1
  TORCH_ARG(int64_t, context_dim);            // hidden_dim
};

// Convolutions with group norm, upsampled FPN-style: three 2x steps (nearest) to layer1's resolution,
// each adding a 1x1 adapter of that backbone level.
class MaskHeadSmallConvImpl : public torch::nn::Module {
 public:
  explicit MaskHeadSmallConvImpl(MaskHeadSmallConvOptions options);
  // x: [B, hidden_dim, h, w] (input_proj of layer4); bbox_mask: [B, Q, nheads, h, w];
  // fpns: layer3 [B, C3, H/16, W/16], layer2 [B, C2, H/8, W/8], layer1 [B, C1, H/4, W/4].
  // Returns [B*Q, 1, H/4, W/4] mask logits.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bbox_mask, const std::vector<torch::Tensor>& fpns);

  MaskHeadSmallConvOptions options;
  torch::nn::Conv2d lay1{nullptr}, lay2{nullptr}, lay3{nullptr}, lay4{nullptr}, lay5{nullptr};
  torch::nn::GroupNorm gn1{nullptr}, gn2{nullptr}, gn3{nullptr}, gn4{nullptr}, gn5{nullptr};
  torch::nn::Conv2d out_lay{nullptr};
  torch::nn::Conv2d adapter1{nullptr}, adapter2{nullptr}, adapter3{nullptr};
};
TORCH_MODULE(MaskHeadSmallConv);

class DETRsegmImpl : public torch::nn::Module {
 public:
  // freeze_detr: requires_grad false on every detr.* parameter (upstream's --frozen_weights recipe:
  // train the mask head on a trained box model). The FPN widths are the backbone's layer3, layer2 and
  // layer1 channels: upstream's hard-coded [1024, 512, 256] for ResNet-50/101, [256, 128, 64] for 18/34.
  explicit DETRsegmImpl(DETR detr, bool freeze_detr = false);
  // DETR's outputs plus pred_masks [B, Q, H/4, W/4] (logits), masks from the last decoder layer.
  DetrOutput forward(const util::NestedTensor& samples);
  void set_conv_kernels(const ConvKernels& kernels) { detr->set_conv_kernels(kernels); }

  DETR detr{nullptr};
  MHAttentionMap bbox_attention{nullptr};
  MaskHeadSmallConv mask_head{nullptr};
};
TORCH_MODULE(DETRsegm);

// Upstream build() with args.masks: DETR from the config, wrapped in DETRsegm.
DETRsegm build_segmentation_model(const ModelConfig& config, bool freeze_detr = false, bool init_weights = true);

// The DICE loss of mask logits against binary targets, both [N, P]: sum over rows of
// 1 - (2 |p t| + 1) / (|p| + |t| + 1) with p = sigmoid(inputs), divided by num_boxes.
torch::Tensor dice_loss(const torch::Tensor& inputs, const torch::Tensor& targets, double num_boxes);

// RetinaNet's focal loss of logits against binary targets, both [N, P]: per element
// alpha_t * BCE * (1 - p_t)^gamma (alpha < 0: no alpha_t), averaged over P, summed over N, / num_boxes.
torch::Tensor sigmoid_focal_loss(
    const torch::Tensor& inputs, const torch::Tensor& targets, double num_boxes, double alpha = 0.25, double gamma = 2);

}  // namespace detr::models
