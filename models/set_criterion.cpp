#include "models/set_criterion.h"

#include <chrono>

#include "models/segmentation.h"
#include "util/box_ops.h"

namespace detr::models {

namespace F = torch::nn::functional;

namespace {

// (batch_idx, src_idx) of the matched predictions, on `device` (upstream _get_src_permutation_idx).
std::pair<torch::Tensor, torch::Tensor> src_permutation_idx(const Matching& m, const torch::Device& device) {
  std::vector<int64_t> batch, src;
  for (size_t b = 0; b < m.size(); ++b) {
    batch.insert(batch.end(), m[b].src.size(), static_cast<int64_t>(b));
    src.insert(src.end(), m[b].src.begin(), m[b].src.end());
  }
  auto to_tensor = [&](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong).to(device); };
  return {to_tensor(batch), to_tensor(src)};
}

// Concatenation over images of field[tgt] (labels or boxes) in matching order.
torch::Tensor matched_targets(const std::vector<util::Target>& targets, const Matching& m, bool boxes) {
  std::vector<torch::Tensor> parts;
  for (size_t b = 0; b < m.size(); ++b) {
    const auto& field = boxes ? targets[b].boxes : targets[b].labels;
    auto idx = torch::tensor(m[b].tgt, torch::kLong).to(field.device());
    parts.push_back(field.index_select(0, idx));
  }
  return torch::cat(parts);
}

// Whether the targets carry masks: all of them or none.
bool targets_carry_masks(const std::vector<util::Target>& targets) {
  size_t with = 0;
  for (const auto& t : targets) with += t.masks.defined() ? 1 : 0;
  TORCH_CHECK(with == 0 || with == targets.size(), "SetCriterion: ", with, " of ", targets.size(),
              " targets carry masks; the mask losses need all of them");
  return with > 0;
}

// (batch_idx, tgt_idx) of the matched targets, on `device` (upstream _get_tgt_permutation_idx).
std::pair<torch::Tensor, torch::Tensor> tgt_permutation_idx(const Matching& m, const torch::Device& device) {
  std::vector<int64_t> batch, tgt;
  for (size_t b = 0; b < m.size(); ++b) {
    batch.insert(batch.end(), m[b].tgt.size(), static_cast<int64_t>(b));
    tgt.insert(tgt.end(), m[b].tgt.begin(), m[b].tgt.end());
  }
  return {torch::tensor(batch, torch::kLong).to(device), torch::tensor(tgt, torch::kLong).to(device)};
}

}  // namespace

int64_t count_boxes(const std::vector<util::Target>& targets) {
  int64_t n = 0;
  for (const auto& t : targets) n += t.labels.numel();
  return n;
}

SetCriterionImpl::SetCriterionImpl(int64_t n_classes,
                                   HungarianMatcher m,
                                   std::map<std::string, double> weights,
                                   double eos)
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
  r.matcher_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Upstream: a float32 tensor, averaged over ranks, clamped to >= 1, read back as a Python float.
  const double num_boxes =
      std::max(1.0, static_cast<double>(
                        static_cast<float>(num_boxes_in ? *num_boxes_in : static_cast<double>(count_boxes(targets)))));
  add_losses(r.losses, outputs, targets, r.matchings[0], num_boxes, "", /*log=*/true);
  if (outputs.pred_masks.defined() && targets_carry_masks(targets))
    add_mask_losses(r.losses, outputs.pred_masks, targets, r.matchings[0], num_boxes);
  for (size_t i = 0; i < outputs.aux_outputs.size(); ++i)
    add_losses(r.losses, outputs.aux_outputs[i], targets, r.matchings[i + 1], num_boxes, "_" + std::to_string(i),
               /*log=*/false);
  return r;
}

void SetCriterionImpl::add_losses(LossDict& losses,
                                  const Prediction& p,
                                  const std::vector<util::Target>& targets,
                                  const Matching& matching,
                                  double num_boxes,
                                  const std::string& suffix,
                                  bool log) {
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
  auto giou =
      util::generalized_box_iou_paired(util::box_cxcywh_to_xyxy(src_boxes), util::box_cxcywh_to_xyxy(target_boxes));
  losses.insert("loss_giou" + suffix, (1 - giou).sum() / num_boxes);

  // cardinality (logging only): |#non-empty predictions - #targets|, averaged over images.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> lengths;
  for (const auto& t : targets) lengths.push_back(t.labels.numel());
  auto tgt_lengths = torch::tensor(lengths, torch::kLong).to(device);
  auto card_pred = (logits.argmax(-1) != logits.size(-1) - 1).sum(1);
  losses.insert("cardinality_error" + suffix, F::l1_loss(card_pred.to(torch::kFloat), tgt_lengths.to(torch::kFloat)));
}

void SetCriterionImpl::add_mask_losses(LossDict& losses,
                                       const torch::Tensor& pred_masks,
                                       const std::vector<util::Target>& targets,
                                       const Matching& matching,
                                       double num_boxes) {
  const auto device = pred_masks.device();
  auto [batch_idx, src_idx] = src_permutation_idx(matching, device);
  auto src_masks = pred_masks.index({batch_idx, src_idx});  // [N, H/4, W/4]
  std::vector<torch::Tensor> masks;
  for (const auto& t : targets) {
    TORCH_CHECK(t.masks.dim() == 3 && t.masks.size(0) == t.labels.numel(),
                "SetCriterion: target masks must be [N, H, W] with N = ", t.labels.numel(), " boxes, got ",
                t.masks.sizes());
    masks.push_back(t.masks.to(device));
  }
  // Padded bottom/right to the batch's largest mask (upstream ignores the padding's validity, a TODO).
  // Matched rows first, in the masks' own dtype (bool), then float: the same 0/1 values without a float
  // copy of every padded mask.
  const auto padded = util::nested_tensor_from_tensor_list(masks).tensors;  // [B, max N, H, W]
  auto [tgt_batch, tgt_idx] = tgt_permutation_idx(matching, device);
  auto target_masks = padded.index({tgt_batch, tgt_idx}).to(src_masks);  // [N, H, W]
  // Predictions upsampled to the (padded) target size.
  src_masks = F::interpolate(src_masks.unsqueeze(1),
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{target_masks.size(-2), target_masks.size(-1)})
                                 .mode(torch::kBilinear)
                                 .align_corners(false))
                  .select(1, 0)
                  .flatten(1);  // [N, H*W]
  target_masks = target_masks.flatten(1).view(src_masks.sizes());
  losses.insert("loss_mask", sigmoid_focal_loss(src_masks, target_masks, num_boxes));
  losses.insert("loss_dice", dice_loss(src_masks, target_masks, num_boxes));
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
  HungarianMatcher matcher(
      HungarianMatcherOptions().cost_class(c.set_cost_class).cost_bbox(c.set_cost_bbox).cost_giou(c.set_cost_giou));
  return SetCriterion(c.num_classes, matcher, c.weight_dict(), c.eos_coef);
}

}  // namespace detr::models
