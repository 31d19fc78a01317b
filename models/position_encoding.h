// Position encodings (upstream models/position_encoding.py) and the Joiner that pairs them with the
// backbone (registered as backbone.0 / backbone.1, as upstream's nn.Sequential).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/backbone.h"
#include "models/model_config.h"
#include "util/misc.h"

namespace detr::models {

struct PositionEmbeddingSineOptions {
  TORCH_ARG(int64_t, num_pos_feats) = 64;  // hidden_dim / 2 when built
  TORCH_ARG(double, temperature) = 10000;
  TORCH_ARG(bool, normalize) = false;  // true when built
  TORCH_ARG(double, scale) = 2 * M_PI;
};

// Sine/cosine of the cumulative valid-pixel count, normalized by each image's valid extent.
// Channels 0..F-1 encode y, F..2F-1 x, interleaved sin, cos, sin, ...
class PositionEmbeddingSineImpl : public torch::nn::Module {
 public:
  explicit PositionEmbeddingSineImpl(PositionEmbeddingSineOptions options = {});
  torch::Tensor forward(const torch::Tensor& mask);  // [B, h, w] true = padding -> [B, 2F, h, w]

  PositionEmbeddingSineOptions options;
};
TORCH_MODULE(PositionEmbeddingSine);

// Learned absolute embeddings (50 rows/cols): channels 0..F-1 encode x, F..2F-1 y. Ignores the mask.
class PositionEmbeddingLearnedImpl : public torch::nn::Module {
 public:
  explicit PositionEmbeddingLearnedImpl(int64_t num_pos_feats = 256);
  torch::Tensor forward(const torch::Tensor& x);  // features [B, C, h, w] -> [B, 2F, h, w]

  torch::nn::Embedding row_embed{nullptr}, col_embed{nullptr};
};
TORCH_MODULE(PositionEmbeddingLearned);

// Backbone ("0") + position embedding ("1").
class JoinerImpl : public torch::nn::Module {
 public:
  JoinerImpl(Backbone backbone, PositionEmbedding position_embedding, int64_t hidden_dim);
  // Returns {features (layer4 with its mask), pos [B, hidden_dim, h, w] in the features' dtype}.
  std::pair<util::NestedTensor, torch::Tensor> forward(const util::NestedTensor& samples);
  // Upstream's Joiner with return_interm_layers (--masks): {layer1..layer4 with their masks, pos of
  // layer4 [B, hidden_dim, h, w]}. Upstream also encodes the three other levels' positions, which
  // nothing reads; they are not computed here.
  std::pair<std::vector<util::NestedTensor>, torch::Tensor> forward_levels(const util::NestedTensor& samples);
  // The position embedding of one level (its mask, or its features for the learned one).
  torch::Tensor position(const util::NestedTensor& feature);

  Backbone backbone{nullptr};
  PositionEmbeddingSine sine{nullptr};
  PositionEmbeddingLearned learned{nullptr};
  int64_t num_channels = 0;
};
TORCH_MODULE(Joiner);

}  // namespace detr::models
