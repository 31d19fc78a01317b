// DETR's loss (upstream models/detr.py SetCriterion): Hungarian matching, then classification,
// box L1 / GIoU and cardinality terms for the final layer and every auxiliary decoder layer.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/detr.h"
#include "models/matcher.h"
#include "models/model_config.h"

namespace detr::models {

// Loss terms in upstream's order: loss_ce, class_error, loss_bbox, loss_giou, cardinality_error,
// (segmentation: loss_mask, loss_dice), then loss_ce_<i>, loss_bbox_<i>, loss_giou_<i>,
// cardinality_error_<i> for aux layer i (upstream computes no mask loss for aux layers).
using LossDict = torch::OrderedDict<std::string, torch::Tensor>;

struct CriterionResult {
  LossDict losses;
  std::vector<Matching> matchings;  // [0] final layer, [1 + i] aux layer i
  double matcher_seconds = 0;       // wall time of the matching (cost, transfer, LSAP), for profiles
};

class SetCriterionImpl : public torch::nn::Module {
 public:
  SetCriterionImpl(int64_t num_classes,
                   HungarianMatcher matcher,
                   std::map<std::string, double> weight_dict,
                   double eos_coef);

  // num_boxes: the (already cross-rank averaged) number of target boxes; by default this batch's.
  // It is clamped to >= 1 as upstream. The mask losses (upstream's loss_masks) are added when
  // outputs.pred_masks is defined and the targets carry masks.
  CriterionResult forward(const DetrOutput& outputs,
                          const std::vector<util::Target>& targets,
                          c10::optional<double> num_boxes = c10::nullopt);

  // Σ losses[k] * weight_dict[k] over the terms that have a weight, in loss order (upstream's `losses`).
  torch::Tensor weighted_total(const LossDict& losses) const;

  int64_t num_classes;
  HungarianMatcher matcher;
  std::map<std::string, double> weight_dict;
  double eos_coef;
  torch::Tensor empty_weight;  // [num_classes + 1] buffer: 1, ..., 1, eos_coef

 private:
  void add_losses(LossDict& losses,
                  const Prediction& p,
                  const std::vector<util::Target>& targets,
                  const Matching& matching,
                  double num_boxes,
                  const std::string& suffix,
                  bool log);
  void add_mask_losses(LossDict& losses,
                       const torch::Tensor& pred_masks,
                       const std::vector<util::Target>& targets,
                       const Matching& matching,
                       double num_boxes);
};
TORCH_MODULE(SetCriterion);

// build(): the matcher and criterion of a model configuration.
SetCriterion build_criterion(const ModelConfig& config);

// Number of target boxes in a batch (before clamping / reduction).
int64_t count_boxes(const std::vector<util::Target>& targets);

}  // namespace detr::models
