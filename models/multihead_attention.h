// torch.nn.MultiheadAttention's forward (LibTorch's F::multi_head_attention_forward, op for op) with
// a memory-lean core for training: softmax(mask(q kᵀ)) → dropout → @ v keeps only q, k, v and a
// one-byte dropout mask for backward and recomputes the attention probabilities there. Autograd
// would keep three float tensors of [B·heads, L, S] per attention (probabilities, dropout noise,
// dropped probabilities) — most of DETR's encoder memory at 800-pixel images. Forward values, the
// random numbers drawn and the gradients are those of the library's attention (bit-identical on
// CPU, where the recomputation repeats the same kernels).
#pragma once
#include <torch/torch.h>

namespace detr::models {

// q = k = v order and shapes as torch: query [L, B, E], key/value [S, B, E], key_padding_mask [B, S]
// (true = ignore) or undefined. Returns the attention output [L, B, E] (no averaged weights).
// lean = false runs the library's own attention (the reference the lean one is tested against).
torch::Tensor multi_head_attention(torch::nn::MultiheadAttentionImpl& mha,
                                   const torch::Tensor& query,
                                   const torch::Tensor& key,
                                   const torch::Tensor& value,
                                   const torch::Tensor& key_padding_mask = {},
                                   bool lean = true);

}  // namespace detr::models
