#include "models/transformer.h"

#include "models/dropout.h"
#include "models/multihead_attention.h"

namespace detr::models {

namespace {

torch::nn::MultiheadAttention attention(const TransformerOptions& o) {
  return torch::nn::MultiheadAttention(
      torch::nn::MultiheadAttentionOptions(o.d_model(), o.nhead()).dropout(o.dropout()));
}

// The module's dropout through the lean implementation (same values and gradients, less memory).
torch::Tensor drop(torch::nn::Dropout& d, const torch::Tensor& x) {
  return models::dropout(x, d->options.p(), d->is_training());
}

// LayerNorm in its parameters' precision: under autocast a half / bfloat16 activation is widened
// first (CUDA autocast does this itself; LibTorch 1.13's CPU autocast would fail on the mixed types).
torch::Tensor ln(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  const auto t = x.scalar_type();
  return norm(t == torch::kHalf || t == torch::kBFloat16 ? x.to(norm->weight.scalar_type()) : x);
}

torch::Tensor with_pos_embed(const torch::Tensor& x, const torch::Tensor& pos) { return pos.defined() ? x + pos : x; }

// Attention output only; the averaged weights are not needed (and not computed).
torch::Tensor attend(torch::nn::MultiheadAttention& mha,
                     const torch::Tensor& q,
                     const torch::Tensor& k,
                     const torch::Tensor& v,
                     const torch::Tensor& key_padding_mask = {}) {
  return multi_head_attention(*mha, q, k, v, key_padding_mask);
}

}  // namespace

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(const TransformerOptions& o)
    : normalize_before(o.normalize_before()) {
  self_attn = register_module("self_attn", attention(o));
  linear1 = register_module("linear1", torch::nn::Linear(o.d_model(), o.dim_feedforward()));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout()));
  linear2 = register_module("linear2", torch::nn::Linear(o.dim_feedforward(), o.d_model()));
  norm1 = register_module("norm1", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
  norm2 = register_module("norm2", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
  dropout1 = register_module("dropout1", torch::nn::Dropout(o.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(o.dropout()));
}

torch::Tensor TransformerEncoderLayerImpl::forward(const torch::Tensor& src,
                                                   const torch::Tensor& key_padding_mask,
                                                   const torch::Tensor& pos) {
  auto ffn = [&](const torch::Tensor& x) {
    return linear2(models::relu_dropout(linear1(x), dropout->options.p(), dropout->is_training()));
  };
  if (normalize_before) {
    auto src2 = ln(norm1, src);
    auto q = with_pos_embed(src2, pos);
    auto out = src + drop(dropout1, attend(self_attn, q, q, src2, key_padding_mask));
    return out + drop(dropout2, ffn(ln(norm2, out)));
  }
  auto q = with_pos_embed(src, pos);
  auto out = ln(norm1, src + drop(dropout1, attend(self_attn, q, q, src, key_padding_mask)));
  return ln(norm2, out + drop(dropout2, ffn(out)));
}

TransformerDecoderLayerImpl::TransformerDecoderLayerImpl(const TransformerOptions& o)
    : normalize_before(o.normalize_before()) {
  self_attn = register_module("self_attn", attention(o));
  multihead_attn = register_module("multihead_attn", attention(o));
  linear1 = register_module("linear1", torch::nn::Linear(o.d_model(), o.dim_feedforward()));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout()));
  linear2 = register_module("linear2", torch::nn::Linear(o.dim_feedforward(), o.d_model()));
  norm1 = register_module("norm1", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
  norm2 = register_module("norm2", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
  norm3 = register_module("norm3", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
  dropout1 = register_module("dropout1", torch::nn::Dropout(o.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(o.dropout()));
  dropout3 = register_module("dropout3", torch::nn::Dropout(o.dropout()));
}

torch::Tensor TransformerDecoderLayerImpl::forward(const torch::Tensor& tgt,
                                                   const torch::Tensor& memory,
                                                   const torch::Tensor& memory_key_padding_mask,
                                                   const torch::Tensor& pos,
                                                   const torch::Tensor& query_pos) {
  auto ffn = [&](const torch::Tensor& x) {
    return linear2(models::relu_dropout(linear1(x), dropout->options.p(), dropout->is_training()));
  };
  auto key = with_pos_embed(memory, pos);
  if (normalize_before) {
    auto t2 = ln(norm1, tgt);
    auto q = with_pos_embed(t2, query_pos);
    auto out = tgt + drop(dropout1, attend(self_attn, q, q, t2));
    t2 = ln(norm2, out);
    out = out +
          drop(dropout2, attend(multihead_attn, with_pos_embed(t2, query_pos), key, memory, memory_key_padding_mask));
    return out + drop(dropout3, ffn(ln(norm3, out)));
  }
  auto q = with_pos_embed(tgt, query_pos);
  auto out = ln(norm1, tgt + drop(dropout1, attend(self_attn, q, q, tgt)));
  out = ln(norm2, out + drop(dropout2, attend(multihead_attn, with_pos_embed(out, query_pos), key, memory,
                                              memory_key_padding_mask)));
  return ln(norm3, out + drop(dropout3, ffn(out)));
}

TransformerEncoderImpl::TransformerEncoderImpl(const TransformerOptions& o) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_encoder_layers(); ++i) layers->push_back(TransformerEncoderLayer(o));
  if (o.normalize_before()) norm = register_module("norm", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
}

torch::Tensor TransformerEncoderImpl::forward(const torch::Tensor& src,
                                              const torch::Tensor& key_padding_mask,
                                              const torch::Tensor& pos) {
  auto output = src;
  for (const auto& layer : *layers)
    output = layer->as<TransformerEncoderLayer>()->forward(output, key_padding_mask, pos);
  return norm ? ln(norm, output) : output;
}

TransformerDecoderImpl::TransformerDecoderImpl(const TransformerOptions& o)
    : return_intermediate(o.return_intermediate_dec()) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_decoder_layers(); ++i) layers->push_back(TransformerDecoderLayer(o));
  norm = register_module("norm", torch::nn::LayerNorm(std::vector<int64_t>{o.d_model()}));
}

torch::Tensor TransformerDecoderImpl::forward(const torch::Tensor& tgt,
                                              const torch::Tensor& memory,
                                              const torch::Tensor& memory_key_padding_mask,
                                              const torch::Tensor& pos,
                                              const torch::Tensor& query_pos) {
  auto output = tgt;
  std::vector<torch::Tensor> intermediate;
  for (const auto& layer : *layers) {
    output = layer->as<TransformerDecoderLayer>()->forward(output, memory, memory_key_padding_mask, pos, query_pos);
    if (return_intermediate) intermediate.push_back(ln(norm, output));
  }
  if (return_intermediate) return torch::stack(intermediate);  // last entry == norm(output)
  return ln(norm, output).unsqueeze(0);
}

TransformerImpl::TransformerImpl(TransformerOptions o) : options(o) {
  encoder = register_module("encoder", TransformerEncoder(o));
  decoder = register_module("decoder", TransformerDecoder(o));
  // Upstream: xavier_uniform_ on every parameter with dim > 1 (including packed in_proj_weight).
  if (!o.init_weights()) return;
  torch::NoGradGuard no_grad;
  for (auto& p : parameters())
    if (p.dim() > 1) torch::nn::init::xavier_uniform_(p);
}

std::pair<torch::Tensor, torch::Tensor> TransformerImpl::forward(const torch::Tensor& src,
                                                                 const torch::Tensor& mask,
                                                                 const torch::Tensor& query_embed,
                                                                 const torch::Tensor& pos_embed) {
  const int64_t bs = src.size(0), c = src.size(1), h = src.size(2), w = src.size(3);
  auto src_seq = src.flatten(2).permute({2, 0, 1});              // [HW, B, C]
  auto pos_seq = pos_embed.flatten(2).permute({2, 0, 1});        // [HW, B, C]
  auto query_pos = query_embed.unsqueeze(1).repeat({1, bs, 1});  // [Q, B, C]
  auto key_padding_mask = mask.flatten(1);                       // [B, HW]
  // Nothing padded (one image, or images of one size): the attention's -inf fill would change
  // nothing, and is skipped. Checked where that costs no device synchronisation.
  if (key_padding_mask.is_cpu() && !key_padding_mask.any().item<bool>()) key_padding_mask = torch::Tensor();
  auto tgt = torch::zeros_like(query_pos);
  auto memory = encoder->forward(src_seq, key_padding_mask, pos_seq);
  auto hs = decoder->forward(tgt, memory, key_padding_mask, pos_seq, query_pos);
  return {hs.transpose(1, 2), memory.permute({1, 2, 0}).view({bs, c, h, w})};
}

}  // namespace detr::models
