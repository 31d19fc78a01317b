// Hungarian matching of predictions to targets (upstream models/matcher.py).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/detr.h"
#include "util/misc.h"

namespace detr::models {

// One image's matching: prediction src[k] <-> target tgt[k]; src ascending; min(Q, T) pairs.
struct MatchIndices {
  std::vector<int64_t> src;
  std::vector<int64_t> tgt;
};
using Matching = std::vector<MatchIndices>;  // one per image

struct HungarianMatcherOptions {
  TORCH_ARG(double, cost_class) = 1;
  TORCH_ARG(double, cost_bbox) = 1;
  TORCH_ARG(double, cost_giou) = 1;
};

// Cost = cost_bbox * L1(cxcywh) - cost_class * p(class) - cost_giou * GIoU, per image's Q x T_i block,
// solved exactly by linear_sum_assignment. No gradients flow through matching.
class HungarianMatcher {
 public:
  explicit HungarianMatcher(HungarianMatcherOptions options = {});

  // Matches every given decoder layer at once: the cost matrices of all layers are computed on the
  // predictions' device and copied to the host in one transfer. Returns one Matching per layer.
  std::vector<Matching> match(const std::vector<Prediction>& layers, const std::vector<util::Target>& targets) const;
  Matching operator()(const Prediction& prediction, const std::vector<util::Target>& targets) const;

  // The [L, B, Q, T_total] cost tensor itself (on the predictions' device), for tests and tools.
  torch::Tensor cost_matrix(const std::vector<Prediction>& layers, const std::vector<util::Target>& targets) const;

  HungarianMatcherOptions options;
};

}  // namespace detr::models
