#include "models/multihead_attention.h"

#include "models/dropout.h"

#include <cmath>
#include <limits>

namespace detr::models {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool reduced(const Tensor& t) { return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16; }

// masked_fill(q kᵀ, padding, -inf) → softmax, as the library computes them (the fill in place: q kᵀ
// is this function's own) (in float32 when q is
// half or bfloat16, as autocast would).
// q [B·H, L, d] (scaled), k [B·H, S, d], mask [B, S] or undefined → [B·H, L, S]
Tensor attention_probs(const Tensor& q, const Tensor& k, const Tensor& key_padding_mask, int64_t num_heads) {
  auto w = torch::bmm(q, k.transpose(1, 2));
  if (key_padding_mask.defined()) {
    const int64_t bh = w.size(0), l = w.size(1), s = w.size(2);
    w = w.view({bh / num_heads, num_heads, l, s})
            .masked_fill_(key_padding_mask.unsqueeze(1).unsqueeze(2), -std::numeric_limits<float>::infinity())
            .view({bh, l, s});
  }
  return reduced(w) ? torch::softmax(w, -1, torch::kFloat) : torch::softmax(w, -1);
}

// Autocast stays outside the core: its dtypes are decided here, the same in forward and backward.
c10::impl::ExcludeDispatchKeyGuard no_autocast() {
  return c10::impl::ExcludeDispatchKeyGuard(
      c10::DispatchKeySet({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA}));
}

class AttentionCore : public torch::autograd::Function<AttentionCore> {
 public:
  // The masks (no gradients) travel outside autograd's inputs: either may be undefined.
  static Tensor forward(AutogradContext* ctx,
                        const Tensor& q,
                        const Tensor& k,
                        const Tensor& v,
                        const c10::optional<Tensor>& key_padding_mask,
                        int64_t num_heads,
                        double p) {
    const auto guard = no_autocast();
    const Tensor mask = key_padding_mask.value_or(Tensor());
    auto probs = attention_probs(q, k, mask, num_heads);
    Tensor keep, dropped = probs;
    if (p > 0) dropped = dropout_keeping_mask(probs, p, &keep);
    dropped = dropped.to(v.scalar_type());  // float32 probabilities meet half values: autocast's bmm
    ctx->save_for_backward({q, k, v});
    if (mask.defined()) ctx->saved_data["mask"] = mask;
    if (keep.defined()) ctx->saved_data["keep"] = keep;
    ctx->saved_data["num_heads"] = num_heads;
    ctx->saved_data["p"] = p;
    return torch::bmm(dropped, v);
  }

  // The formulas autograd would apply to bmm, mul, softmax and masked_fill, on recomputed values.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto guard = no_autocast();
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2];
    const Tensor mask = ctx->saved_data.count("mask") ? ctx->saved_data["mask"].toTensor() : Tensor();
    const Tensor keep = ctx->saved_data.count("keep") ? ctx->saved_data["keep"].toTensor() : Tensor();
    const int64_t num_heads = ctx->saved_data["num_heads"].toInt();
    const double p = ctx->saved_data["p"].toDouble();
    const auto grad_out = grads[0].to(v.scalar_type());  // [B·H, L, d]

    const auto probs = attention_probs(q, k, mask, num_heads);
    // The dropped probabilities again: on CPU the forward's product bit for bit; the fused kernel of
    // accelerators applies mask and scale in its own order (equal up to rounding).
    const Tensor dropped = (keep.defined() ? dropout_backward(probs, keep, p) : probs).to(v.scalar_type());
    auto grad_v = dropped.transpose(1, 2).bmm(grad_out);
    auto grad_probs = grad_out.bmm(v.transpose(1, 2)).to(probs.scalar_type());
    if (keep.defined()) grad_probs = dropout_backward(grad_probs, keep, p);
    // In the probabilities' precision, then back to the scores' (softmax's half-to-float backward).
    auto grad_w = at::_softmax_backward_data(grad_probs, probs, -1, probs.scalar_type()).to(q.scalar_type());
    if (mask.defined()) {
      const int64_t bh = grad_w.size(0), l = grad_w.size(1), s = grad_w.size(2);
      grad_w = grad_w.view({bh / num_heads, num_heads, l, s})
                   .masked_fill_(mask.unsqueeze(1).unsqueeze(2), 0)
                   .view({bh, l, s});
    }
    auto grad_q = grad_w.bmm(k);
    auto grad_k = q.transpose(1, 2).bmm(grad_w).transpose(1, 2);
    return {grad_q, grad_k, grad_v, Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor multi_head_attention(torch::nn::MultiheadAttentionImpl& mha,
                            const Tensor& query,
                            const Tensor& key,
                            const Tensor& value,
                            const Tensor& key_padding_mask,
                            bool lean) {
  const auto& o = mha.options;
  const bool training = mha.is_training() && o.dropout() > 0;
  // Under autocast (where LibTorch 1.13's own attention fails on bfloat16) this path is always taken.
  const auto autocast_key = query.is_cuda() ? c10::DispatchKey::AutocastCUDA : c10::DispatchKey::AutocastCPU;
  const bool autocast = !c10::impl::tls_is_dispatch_key_excluded(autocast_key);
  if (!lean || (training && o.dropout() >= 1) || (!autocast && !torch::GradMode::is_enabled()) || o.add_bias_kv() ||
      o.add_zero_attn() || !mha._qkv_same_embed_dim) {
    return std::get<0>(mha.forward(query, key, value, key_padding_mask, /*need_weights=*/false));
  }
  const int64_t tgt_len = query.size(0), bsz = query.size(1), embed_dim = query.size(2);
  const int64_t num_heads = o.num_heads(), head_dim = embed_dim / num_heads;
  TORCH_CHECK(head_dim * num_heads == embed_dim, "embed_dim ", embed_dim, " is not divisible by num_heads ", num_heads);
  // In-projection with the packed weight's thirds (LibTorch's branch for distinct query, key and
  // value, which DETR always passes: positions are added to queries and keys, never to values).
  namespace F = torch::nn::functional;
  const auto& w = mha.in_proj_weight;
  const auto& b = mha.in_proj_bias;
  auto q = F::linear(query, w.slice(0, 0, embed_dim), b.defined() ? b.slice(0, 0, embed_dim) : b);
  auto k = F::linear(key, w.slice(0, embed_dim, 2 * embed_dim), b.defined() ? b.slice(0, embed_dim, 2 * embed_dim) : b);
  auto v = F::linear(value, w.slice(0, 2 * embed_dim), b.defined() ? b.slice(0, 2 * embed_dim) : b);
  q = q * (1 / std::sqrt(head_dim));
  q = q.contiguous().view({tgt_len, bsz * num_heads, head_dim}).transpose(0, 1);
  k = k.contiguous().view({-1, bsz * num_heads, head_dim}).transpose(0, 1);
  v = v.contiguous().view({-1, bsz * num_heads, head_dim}).transpose(0, 1);
  auto out =
      AttentionCore::apply(q, k, v, key_padding_mask.defined() ? c10::optional<Tensor>(key_padding_mask) : c10::nullopt,
                           num_heads, training ? o.dropout() : 0.0);
  out = out.transpose(0, 1).contiguous().view({tgt_len, bsz, embed_dim});
  return F::linear(out, mha.out_proj->weight, mha.out_proj->bias);
}

}  // namespace detr::models
