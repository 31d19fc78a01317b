#include "models/set_criterion.h"

#include <chrono>

#include "src/util/box_ops.h"

namespace detr::models {

namespace F = torch::nn::functional;

namespace {

// (batch_idx, src_idx) of the matched predictions, on `device` (upstream _get_src_permutation_idx).
std::pair<torch::Tensor, torch::Tensor> src_permutation_idx(const Matching& m,
                                                            const torch::Device& device) {
  std::vector<int64_t> batch, src;
  for (size_t b = 0; b < m.size(); ++b) {
    batch.insert(batch.end(), m[b].src.size(), static_cast<int64_t>(b));
    src.insert(src.end(), m[b].src.begin(), m[b].src.end());
  }
  auto to_tensor = [&](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kLong).to(device);
  };
  return {to_tensor(batch), to_tensor(src)};
}

// Concatenation over images of field[tgt] (labels or boxes) in matching order.
torch::Tensor matched_targets(const std::vector<util::Target>& targets, const Matching& m,
                              bool boxes) {
  std::vector<torch::Tensor> parts;
  for (size_t b = 0; b < m.size(); ++b) {
    const auto& field = boxes ? targets[b].boxes : targets[b].labels;
    auto idx = torch::tensor(m[b].tgt, torch::kLong).to(field.device());
    parts.push_back(field.index_select(0, idx));
  }
  return torch::cat(parts);
}

}  // namespace

int64_t count_boxes(const std::vector<util::Target>& targets) {
  int64_t n = 0;
  for (const auto& t : targets) n += t.labels.numel();
  return n;
}

SetCriterionImpl::SetCriterionImpl(int64_t n_classes, HungarianMatcher m,
                                   std::map<std::string, double> weights, double eos)
    : num_classes(n_classes), matcher(m), weight_dict(std::move(weights)), eos_coef(eos) {
  auto w = torch::ones(num_classes + 1);
  w[num_classes] = eos_coef;
  empty_weight = register_buffer("empty_weight", w);
}

CriterionResult SetCriterionImpl::forward(const DetrOutput& outputs,
                                          const std::vector<util::Target>& targets,
                                          c10::optional<double> num_boxes_in) {
  std::vector<Prediction> layers{outputs};
  layers.insert(layers.end(), outputs.aux_outputs.begin(), outputs.aux_outputs.end());
  CriterionResult r;
  const auto t0 = std::chrono::steady_clock::now();
  r.matchings = matcher.match(layers, targets);  // one host transfer for all layers
  last_matcher_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Upstream: a float32 tensor, averaged over ranks, clamped to >= 1, read back as a Python float.
  const double num_boxes = std::max(
      1.0, static_cast<double>(static_cast<float>(
               num_boxes_in ? *num_boxes_in : static_cast<double>(count_boxes(targets)))));
  add_losses(r.losses, outputs, targets, r.matchings[0], num_boxes, "", /*log=*/true);
  for (size_t i = 0; i < outputs.aux_outputs.size(); ++i)
    add_losses(r.losses, outputs.aux_outputs[i], targets, r.matchings[i + 1], num_boxes,
               "_" + std::to_string(i), /*log=*/false);
  return r;
}

void SetCriterionImpl::add_losses(LossDict& losses, const Prediction& p,
                                  const std::vector<util::Target>& targets, const Matching& matching,
                                  double num_boxes, const std::string& suffix, bool log) {
  const auto& logits = p.pred_logits;  // [B, Q, C+1]
  const auto device = logits.device();
  auto [batch_idx, src_idx] = src_permutation_idx(matching, device);

  // labels: weighted cross-entropy over all queries, unmatched ones labelled "no object".
  auto target_classes_o = matched_targets(targets, matching, /*boxes=*/false).to(device);
  auto target_classes = torch::full({logits.size(0), logits.size(1)}, num_classes,
                                    torch::TensorOptions().dtype(torch::kLong).device(device));
  target_classes.index_put_({batch_idx, src_idx}, target_classes_o);
  losses.insert("loss_ce" + suffix,
                F::cross_entropy(logits.transpose(1, 2), target_classes,
                                 F::CrossEntropyFuncOptions().weight(empty_weight.to(logits.dtype()))));
  if (log) {
    torch::NoGradGuard no_grad;
    auto matched_logits = logits.index({batch_idx, src_idx});
    losses.insert("class_error" + suffix, 100 - util::accuracy(matched_logits, target_classes_o));
  }

  // boxes: L1 and GIoU of matched pairs, normalized by the number of target boxes.
  auto src_boxes = p.pred_boxes.index({batch_idx, src_idx});  // [N, 4]
  auto target_boxes = matched_targets(targets, matching, /*boxes=*/true).to(src_boxes);
  auto loss_bbox = F::l1_loss(src_boxes, target_boxes, F::L1LossFuncOptions().reduction(torch::kNone));
  losses.insert("loss_bbox" + suffix, loss_bbox.sum() / num_boxes);
  auto giou = util::generalized_box_iou_paired(util::box_cxcywh_to_xyxy(src_boxes),
                                               util::box_cxcywh_to_xyxy(target_boxes));
  losses.insert("loss_giou" + suffix, (1 - giou).sum() / num_boxes);

  // cardinality (logging only): |#non-empty predictions - #targets|, averaged over images.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> lengths;
  for (const auto& t : targets) lengths.push_back(t.labels.numel());
  auto tgt_lengths = torch::tensor(lengths, torch::kLong).to(device);
  auto card_pred = (logits.argmax(-1) != logits.size(-1) - 1).sum(1);
  losses.insert("cardinality_error" + suffix,
                F::l1_loss(card_pred.to(torch::kFloat), tgt_lengths.to(torch::kFloat)));
}

torch::Tensor SetCriterionImpl::weighted_total(const LossDict& losses) const {
  torch::Tensor total;
  for (const auto& item : losses) {
    auto w = weight_dict.find(item.key());
    if (w == weight_dict.end()) continue;
    auto term = item.value() * w->second;
    total = total.defined() ? total + term : term;
  }
  TORCH_CHECK(total.defined(), "SetCriterion: no weighted loss terms");
  return total;
}

SetCriterion build_criterion(const ModelConfig& c) {
  HungarianMatcher matcher(HungarianMatcherOptions()
                               .cost_class(c.set_cost_class)
                               .cost_bbox(c.set_cost_bbox)
                               .cost_giou(c.set_cost_giou));
  return SetCriterion(c.num_classes, matcher, c.weight_dict(), c.eos_coef);
}

}  // namespace detr::models
