// DETR's transformer (upstream models/transformer.py): torch.nn.Transformer with positional encodings
// added to queries and keys in every attention (never to values), no final encoder norm unless
// pre-norm, and the decoder returning every layer's output through its shared final norm.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace detr::models {

struct TransformerOptions {
  TORCH_ARG(int64_t, d_model) = 512;
  TORCH_ARG(int64_t, nhead) = 8;
  TORCH_ARG(int64_t, num_encoder_layers) = 6;
  TORCH_ARG(int64_t, num_decoder_layers) = 6;
  TORCH_ARG(int64_t, dim_feedforward) = 2048;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(bool, normalize_before) = false;
  TORCH_ARG(bool, return_intermediate_dec) = false;
  TORCH_ARG(bool, init_weights) = true;  // false: loaded next; upstream's xavier_uniform_ pass is skipped
};

class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderLayerImpl(const TransformerOptions& o);
  // src, pos: [HW, B, C]; key_padding_mask: [B, HW] true = padding.
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& key_padding_mask, const torch::Tensor& pos);

  torch::nn::MultiheadAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  bool normalize_before = false;
};
TORCH_MODULE(TransformerEncoderLayer);

class TransformerDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit TransformerDecoderLayerImpl(const TransformerOptions& o);
  // tgt, query_pos: [Q, B, C]; memory, pos: [HW, B, C]; memory_key_padding_mask: [B, HW].
  torch::Tensor forward(const torch::Tensor& tgt,
                        const torch::Tensor& memory,
                        const torch::Tensor& memory_key_padding_mask,
                        const torch::Tensor& pos,
                        const torch::Tensor& query_pos);

  torch::nn::MultiheadAttention self_attn{nullptr}, multihead_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr}, dropout3{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  bool normalize_before = false;
};
TORCH_MODULE(TransformerDecoderLayer);

class TransformerEncoderImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderImpl(const TransformerOptions& o);
  torch::Tensor forward(const torch::Tensor& src,
                        const torch::Tensor& key_padding_mask,
                        const torch::Tensor& pos);  // [HW, B, C] -> [HW, B, C]

  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // only with pre-norm
};
TORCH_MODULE(TransformerEncoder);

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  explicit TransformerDecoderImpl(const TransformerOptions& o);
  // Returns [L, Q, B, C] (every layer through `norm`) if return_intermediate, else [1, Q, B, C].
  torch::Tensor forward(const torch::Tensor& tgt,
                        const torch::Tensor& memory,
                        const torch::Tensor& memory_key_padding_mask,
                        const torch::Tensor& pos,
                        const torch::Tensor& query_pos);

  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // always present
  bool return_intermediate = false;
};
TORCH_MODULE(TransformerDecoder);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(TransformerOptions options = {});
  // src, pos_embed: [B, C, H, W]; mask: [B, H, W] true = padding; query_embed: [Q, C].
  // Returns {hs [L, B, Q, C], memory [B, C, H, W]}.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& src,
                                                  const torch::Tensor& mask,
                                                  const torch::Tensor& query_embed,
                                                  const torch::Tensor& pos_embed);

  TransformerOptions options;
  TransformerEncoder encoder{nullptr};
  TransformerDecoder decoder{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace detr::models
