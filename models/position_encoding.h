// Position encodings (upstream models/position_encoding.py) and the Joiner that pairs them with the
// backbone (registered as backbone.0 / backbone.1, as upstream's nn.Sequential).
#pragma once
#include <torch/torch.h>

#include "models/backbone.h"
#include "src/util/misc.h"

namespace detr::models {

struct PositionEmbeddingSineOptions {
  TORCH_ARG(int64_t, num_pos_feats) = 64;  // hidden_dim / 2 when built
  TORCH_ARG(double, temperature) = 10000;
  TORCH_ARG(bool, normalize) = false;      // true when built
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
  JoinerImpl(Backbone backbone, const std::string& position_embedding, int64_t hidden_dim);
  // Returns {features (layer4 with its mask), pos [B, hidden_dim, h, w] in the features' dtype}.
  std::pair<util::NestedTensor, torch::Tensor> forward(const util::NestedTensor& samples);

  Backbone backbone{nullptr};
  PositionEmbeddingSine sine{nullptr};
  PositionEmbeddingLearned learned{nullptr};
  int64_t num_channels = 0;
};
TORCH_MODULE(Joiner);

}  // namespace detr::models
