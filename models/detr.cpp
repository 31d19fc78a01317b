#include "models/detr.h"

namespace detr::models {

MLPImpl::MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) {
    const int64_t in = i == 0 ? input_dim : hidden_dim;
    const int64_t out = i == num_layers - 1 ? output_dim : hidden_dim;
    layers->push_back(torch::nn::Linear(in, out));
  }
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  const auto n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < n) x = torch::relu(x);
  }
  return x;
}

DETRImpl::DETRImpl(Joiner bb, Transformer tr, DETROptions opts) : options(opts) {
  const int64_t hidden_dim = tr->options.d_model();
  transformer = register_module("transformer", std::move(tr));
  class_embed = register_module("class_embed", torch::nn::Linear(hidden_dim, options.num_classes() + 1));
  bbox_embed = register_module("bbox_embed", MLP(hidden_dim, hidden_dim, 4, 3));
  query_embed = register_module("query_embed", torch::nn::Embedding(options.num_queries(), hidden_dim));
  input_proj =
      register_module("input_proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(bb->num_channels, hidden_dim, 1)));
  backbone = register_module("backbone", std::move(bb));
}

DetrOutput DETRImpl::forward(const util::NestedTensor& samples) {
  auto [features, pos] = backbone->forward(samples);
  return predict(run_transformer(features, pos).hs);
}

TransformerPass DETRImpl::run_transformer(const util::NestedTensor& features, const torch::Tensor& pos) {
  auto src_proj = input_proj(features.tensors);
  auto [hs, memory] = transformer->forward(src_proj, features.mask, query_embed->weight, pos);
  return {src_proj, features.mask, hs, memory};
}

DetrOutput DETRImpl::predict(const torch::Tensor& hs) {
  auto outputs_class = class_embed(hs);           // [L, B, Q, num_classes + 1]
  auto outputs_coord = bbox_embed(hs).sigmoid();  // [L, B, Q, 4]
  const int64_t n_layers = hs.size(0);
  DetrOutput out;
  out.pred_logits = outputs_class[n_layers - 1];
  out.pred_boxes = outputs_coord[n_layers - 1];
  if (options.aux_loss()) {
    for (int64_t i = 0; i + 1 < n_layers; ++i) out.aux_outputs.push_back({outputs_class[i], outputs_coord[i]});
  }
  return out;
}

DETR build_model(const ModelConfig& c, bool init_weights) {
  c.validate();
  auto backbone = Backbone(BackboneOptions()
                               .name(c.backbone)
                               .train_backbone(c.train_backbone)
                               .dilation(c.dilation)
                               .init_weights(init_weights));
  auto joiner = Joiner(backbone, c.position_embedding, c.hidden_dim);
  auto transformer = Transformer(TransformerOptions()
                                     .d_model(c.hidden_dim)
                                     .nhead(c.nheads)
                                     .num_encoder_layers(c.enc_layers)
                                     .num_decoder_layers(c.dec_layers)
                                     .dim_feedforward(c.dim_feedforward)
                                     .dropout(c.dropout)
                                     .normalize_before(c.pre_norm)
                                     .return_intermediate_dec(true)
                                     .init_weights(init_weights));
  return DETR(joiner, transformer,
              DETROptions().num_classes(c.num_classes).num_queries(c.num_queries).aux_loss(c.aux_loss));
}

int64_t count_trainable_parameters(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

}  // namespace detr::models
