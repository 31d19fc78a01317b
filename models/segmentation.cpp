#include "models/segmentation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace detr::models {

namespace F = torch::nn::functional;

bool is_segmentation_state(const StateDict& state) {
  return std::any_of(state.begin(), state.end(), [](const auto& kv) { return kv.first.rfind(kDetrKeyPrefix, 0) == 0; });
}

std::pair<StateDict, StateDict> split_segmentation_state(StateDict state) {
  const size_t n = std::char_traits<char>::length(kDetrKeyPrefix);
  std::pair<StateDict, StateDict> parts;
  for (auto& [k, v] : state) {
    if (k.rfind(kDetrKeyPrefix, 0) == 0)
      parts.first.emplace(k.substr(n), std::move(v));
    else
      parts.second.emplace(k, std::move(v));
  }
  return parts;
}

MHAttentionMapImpl::MHAttentionMapImpl(MHAttentionMapOptions opts) : options(std::move(opts)) {
  TORCH_CHECK(options.num_heads() > 0 && options.hidden_dim() % options.num_heads() == 0,
              "MHAttentionMap: hidden_dim must be a multiple of num_heads, got ", options.hidden_dim(), " and ",
              options.num_heads());
  auto linear = [&] {
    return torch::nn::Linear(torch::nn::LinearOptions(options.query_dim(), options.hidden_dim()).bias(options.bias()));
  };
  q_linear = register_module("q_linear", linear());
  k_linear = register_module("k_linear", linear());
  torch::NoGradGuard no_grad;
  for (auto* l : {&q_linear, &k_linear}) {
    if ((*l)->bias.defined()) torch::nn::init::zeros_((*l)->bias);
    torch::nn::init::xavier_uniform_((*l)->weight);
  }
  normalize_fact = std::pow(static_cast<double>(options.hidden_dim()) / options.num_heads(), -0.5);
}

torch::Tensor MHAttentionMapImpl::forward(const torch::Tensor& q_in,
                                          const torch::Tensor& k_in,
                                          const torch::Tensor& mask) {
  TORCH_CHECK(q_in.dim() == 3 && k_in.dim() == 4 && q_in.size(0) == k_in.size(0),
              "MHAttentionMap: expected q [B, Q, C] and k [B, C, h, w], got ", q_in.sizes(), " and ", k_in.sizes());
  const int64_t n = options.num_heads(), c = options.hidden_dim() / n;
  auto q = q_linear(q_in);  // [B, Q, hidden_dim]
  auto k = F::conv2d(k_in, k_linear->weight.unsqueeze(-1).unsqueeze(-1),
                     F::Conv2dFuncOptions().bias(k_linear->bias));               // [B, hidden_dim, h, w]
  auto qh = q.view({q.size(0), q.size(1), n, c});                                // [B, Q, n, c]
  auto kh = k.view({k.size(0), n, c, k.size(-2), k.size(-1)});                   // [B, n, c, h, w]
  auto weights = torch::einsum("bqnc,bnchw->bqnhw", {qh * normalize_fact, kh});  // [B, Q, n, h, w]
  if (mask.defined()) weights.masked_fill_(mask.unsqueeze(1).unsqueeze(1), -std::numeric_limits<double>::infinity());
  weights = F::softmax(weights.flatten(2), F::SoftmaxFuncOptions(-1)).view(weights.sizes());
  if (options.dropout() > 0)
    weights = F::dropout(weights, F::DropoutFuncOptions().p(options.dropout()).training(is_training()));
  return weights;
}

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(k / 2));
}

torch::nn::GroupNorm group_norm(int64_t channels) {
  TORCH_CHECK(channels > 0 && channels % 8 == 0,
              "MaskHeadSmallConv: GroupNorm(8, c) needs c to be a positive multiple of 8, got ", channels);
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(8, channels));
}

// Upstream _expand: [B, ...] -> [B * length, ...], each item repeated `length` times in a row.
torch::Tensor expand(const torch::Tensor& t, int64_t length) {
  std::vector<int64_t> repeats(t.dim() + 1, 1);
  repeats[1] = length;
  return t.unsqueeze(1).repeat(repeats).flatten(0, 1);
}

}  // namespace

MaskHeadSmallConvImpl::MaskHeadSmallConvImpl(MaskHeadSmallConvOptions opts) : options(std::move(opts)) {
  const int64_t dim = options.dim(), ctx = options.context_dim();
  const auto& fpn = options.fpn_dims();
  TORCH_CHECK(fpn.size() == 3, "MaskHeadSmallConv: fpn_dims must hold 3 widths, got ", fpn.size());
  const std::vector<int64_t> inter_dims{dim, ctx / 2, ctx / 4, ctx / 8, ctx / 16};
  lay1 = register_module("lay1", conv(dim, dim, 3));
  gn1 = register_module("gn1", group_norm(dim));
  lay2 = register_module("lay2", conv(dim, inter_dims[1], 3));
  gn2 = register_module("gn2", group_norm(inter_dims[1]));
  lay3 = register_module("lay3", conv(inter_dims[1], inter_dims[2], 3));
  gn3 = register_module("gn3", group_norm(inter_dims[2]));
  lay4 = register_module("lay4", conv(inter_dims[2], inter_dims[3], 3));
  gn4 = register_module("gn4", group_norm(inter_dims[3]));
  lay5 = register_module("lay5", conv(inter_dims[3], inter_dims[4], 3));
  gn5 = register_module("gn5", group_norm(inter_dims[4]));
  out_lay = register_module("out_lay", conv(inter_dims[4], 1, 3));
  adapter1 = register_module("adapter1", conv(fpn[0], inter_dims[1], 1));
  adapter2 = register_module("adapter2", conv(fpn[1], inter_dims[2], 1));
  adapter3 = register_module("adapter3", conv(fpn[2], inter_dims[3], 1));
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_uniform_(c->weight, /*a=*/1);
      torch::nn::init::zeros_(c->bias);
    }
  }
}

torch::Tensor MaskHeadSmallConvImpl::forward(const torch::Tensor& x_in,
                                             const torch::Tensor& bbox_mask,
                                             const std::vector<torch::Tensor>& fpns) {
  TORCH_CHECK(bbox_mask.dim() == 5 && fpns.size() == 3,
              "MaskHeadSmallConv: expected bbox_mask [B, Q, nheads, h, w] and 3 FPN levels, got ", bbox_mask.sizes(),
              " and ", fpns.size(), " levels");
  auto x = torch::cat({expand(x_in, bbox_mask.size(1)), bbox_mask.flatten(0, 1)}, 1);  // [B*Q, dim, h, w]
  x = gn1(lay1(x)).relu();
  x = gn2(lay2(x)).relu();
  std::vector<std::tuple<torch::nn::Conv2d, torch::nn::Conv2d, torch::nn::GroupNorm>> steps{
      {adapter1, lay3, gn3}, {adapter2, lay4, gn4}, {adapter3, lay5, gn5}};
  for (size_t i = 0; i < steps.size(); ++i) {
    auto [adapter, lay, gn] = steps[i];
    auto cur_fpn = adapter(fpns[i]);  // [B, C_i, 2h, 2w]
    if (cur_fpn.size(0) != x.size(0)) cur_fpn = expand(cur_fpn, x.size(0) / cur_fpn.size(0));
    x = cur_fpn + F::interpolate(x, F::InterpolateFuncOptions()
                                        .size(std::vector<int64_t>{cur_fpn.size(-2), cur_fpn.size(-1)})
                                        .mode(torch::kNearest));
    x = gn(lay(x)).relu();
  }
  return out_lay(x);  // [B*Q, 1, H/4, W/4]
}

DETRsegmImpl::DETRsegmImpl(DETR d, bool freeze_detr) {
  detr = register_module("detr", std::move(d));
  if (freeze_detr) {
    for (auto& p : detr->parameters()) p.set_requires_grad(false);
  }
  const int64_t hidden_dim = detr->transformer->options.d_model();
  const int64_t nheads = detr->transformer->options.nhead();
  const auto& c = detr->backbone->backbone->body->layer_channels;  // layer1..layer4
  bbox_attention = register_module("bbox_attention",
                                   MHAttentionMap(MHAttentionMapOptions(hidden_dim, hidden_dim, nheads).dropout(0.0)));
  mask_head = register_module(
      "mask_head", MaskHeadSmallConv(MaskHeadSmallConvOptions(hidden_dim + nheads, {c[2], c[1], c[0]}, hidden_dim)));
}

DetrOutput DETRsegmImpl::forward(const util::NestedTensor& samples) {
  auto [features, pos] = detr->backbone->forward_levels(samples);  // layer1..layer4
  const auto t = detr->run_transformer(features.back(), pos);
  auto out = detr->predict(t.hs);
  // Masks from the last decoder layer only (upstream's "FIXME h_boxes takes the last one computed").
  auto bbox_mask = bbox_attention(t.hs[-1], t.memory, t.mask);  // [B, Q, nheads, h, w]
  auto seg_masks =
      mask_head->forward(t.src_proj, bbox_mask, {features[2].tensors, features[1].tensors, features[0].tensors});
  const int64_t bs = features.back().tensors.size(0);
  out.pred_masks = seg_masks.view({bs, detr->options.num_queries(), seg_masks.size(-2), seg_masks.size(-1)});
  return out;
}

DETRsegm build_segmentation_model(const ModelConfig& config, bool freeze_detr, bool init_weights) {
  auto c = config;
  c.masks = true;
  c.validate();
  return DETRsegm(build_model(c, init_weights), freeze_detr);
}

torch::Tensor dice_loss(const torch::Tensor& inputs_in, const torch::Tensor& targets, double num_boxes) {
  auto inputs = inputs_in.sigmoid().flatten(1);
  auto numerator = 2 * (inputs * targets).sum(1);
  auto denominator = inputs.sum(-1) + targets.sum(-1);
  auto loss = 1 - (numerator + 1) / (denominator + 1);
  return loss.sum() / num_boxes;
}

torch::Tensor sigmoid_focal_loss(
    const torch::Tensor& inputs, const torch::Tensor& targets, double num_boxes, double alpha, double gamma) {
  auto prob = inputs.sigmoid();
  auto ce_loss = F::binary_cross_entropy_with_logits(
      inputs, targets, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  auto p_t = prob * targets + (1 - prob) * (1 - targets);
  auto loss = ce_loss * (1 - p_t).pow(gamma);
  if (alpha >= 0) {
    auto alpha_t = alpha * targets + (1 - alpha) * (1 - targets);
    loss = alpha_t * loss;
  }
  return loss.mean(1).sum() / num_boxes;
}

}  // namespace detr::models
