#include "models/position_encoding.h"

namespace detr::models {

PositionEmbeddingSineImpl::PositionEmbeddingSineImpl(PositionEmbeddingSineOptions opts) : options(opts) {}

torch::Tensor PositionEmbeddingSineImpl::forward(const torch::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 3, "PositionEmbeddingSine: mask must be [B, h, w], got ", mask.sizes());
  auto not_mask = ~mask;
  auto y_embed = not_mask.cumsum(1, torch::kFloat);  // [B, h, w]
  auto x_embed = not_mask.cumsum(2, torch::kFloat);
  if (options.normalize()) {
    constexpr double eps = 1e-6;
    y_embed = y_embed / (y_embed.slice(1, -1) + eps) * options.scale();
    x_embed = x_embed / (x_embed.slice(2, -1) + eps) * options.scale();
  }
  const int64_t f = options.num_pos_feats();
  auto dim_t = torch::arange(f, mask.options().dtype(torch::kFloat));
  dim_t = torch::pow(options.temperature(), 2 * torch::div(dim_t, 2, "floor") / f);
  auto pos_x = x_embed.unsqueeze(-1) / dim_t;  // [B, h, w, F]
  auto pos_y = y_embed.unsqueeze(-1) / dim_t;
  auto interleave = [](const torch::Tensor& p) {
    return torch::stack({p.slice(3, 0, c10::nullopt, 2).sin(), p.slice(3, 1, c10::nullopt, 2).cos()}, 4).flatten(3);
  };
  return torch::cat({interleave(pos_y), interleave(pos_x)}, 3).permute({0, 3, 1, 2});
}

PositionEmbeddingLearnedImpl::PositionEmbeddingLearnedImpl(int64_t num_pos_feats) {
  row_embed = register_module("row_embed", torch::nn::Embedding(50, num_pos_feats));
  col_embed = register_module("col_embed", torch::nn::Embedding(50, num_pos_feats));
  torch::NoGradGuard no_grad;
  torch::nn::init::uniform_(row_embed->weight);
  torch::nn::init::uniform_(col_embed->weight);
}

torch::Tensor PositionEmbeddingLearnedImpl::forward(const torch::Tensor& x) {
  const int64_t h = x.size(-2), w = x.size(-1);
  TORCH_CHECK(h <= 50 && w <= 50, "learned position embedding covers feature maps up to 50x50, got ", h, "x", w,
              " (use --position_embedding sine or smaller images)");
  auto idx = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  auto x_emb = col_embed(torch::arange(w, idx));  // [w, F]
  auto y_emb = row_embed(torch::arange(h, idx));  // [h, F]
  return torch::cat({x_emb.unsqueeze(0).repeat({h, 1, 1}), y_emb.unsqueeze(1).repeat({1, w, 1})}, -1)
      .permute({2, 0, 1})
      .unsqueeze(0)
      .repeat({x.size(0), 1, 1, 1});
}

JoinerImpl::JoinerImpl(Backbone bb, PositionEmbedding position_embedding, int64_t hidden_dim) {
  backbone = register_module("0", std::move(bb));
  num_channels = backbone->num_channels;
  const int64_t n_steps = hidden_dim / 2;
  if (position_embedding == PositionEmbedding::kSine) {
    sine = register_module(
        "1", PositionEmbeddingSine(PositionEmbeddingSineOptions().num_pos_feats(n_steps).normalize(true)));
  } else {
    learned = register_module("1", PositionEmbeddingLearned(n_steps));
  }
}

torch::Tensor JoinerImpl::position(const util::NestedTensor& feature) {
  auto pos = sine ? sine->forward(feature.mask) : learned->forward(feature.tensors);
  return pos.to(feature.tensors.scalar_type());
}

std::pair<util::NestedTensor, torch::Tensor> JoinerImpl::forward(const util::NestedTensor& samples) {
  auto features = backbone->forward(samples);
  auto pos = position(features);
  return {features, pos};
}

std::pair<std::vector<util::NestedTensor>, torch::Tensor> JoinerImpl::forward_levels(
    const util::NestedTensor& samples) {
  auto features = backbone->forward_levels(samples);
  auto pos = position(features.back());
  return {features, pos};
}

}  // namespace detr::models
