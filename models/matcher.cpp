#include "models/matcher.h"

#include "models/linear_sum_assignment.h"
#include "util/box_ops.h"

namespace detr::models {

HungarianMatcher::HungarianMatcher(HungarianMatcherOptions opts) : options(opts) {
  TORCH_CHECK(options.cost_class() != 0 || options.cost_bbox() != 0 || options.cost_giou() != 0,
              "HungarianMatcher: all costs can't be 0");
}

torch::Tensor HungarianMatcher::cost_matrix(const std::vector<Prediction>& layers,
                                            const std::vector<util::Target>& targets) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> logits, boxes, tgt_ids, tgt_bbox;
  for (const auto& l : layers) {
    logits.push_back(l.pred_logits);
    boxes.push_back(l.pred_boxes);
  }
  for (const auto& t : targets) {
    tgt_ids.push_back(t.labels);
    tgt_bbox.push_back(t.boxes);
  }
  auto all_logits = torch::stack(logits);  // [L, B, Q, C+1]
  const int64_t n_layers = all_logits.size(0), bs = all_logits.size(1), nq = all_logits.size(2);
  auto out_prob = all_logits.flatten(0, 2).softmax(-1);         // [L*B*Q, C+1]
  auto out_bbox = torch::stack(boxes).flatten(0, 2);            // [L*B*Q, 4]
  auto ids = torch::cat(tgt_ids);                               // [T]
  auto tbox = torch::cat(tgt_bbox).to(out_bbox.scalar_type());  // [T, 4]
  TORCH_CHECK(ids.numel() == 0 || ids.max().item<int64_t>() < all_logits.size(3) - 1, "HungarianMatcher: target label ",
              ids.numel() ? ids.max().item<int64_t>() : 0, " is out of range for ", all_logits.size(3) - 1,
              " classes (num_classes)");
  auto cost_class = -out_prob.index_select(1, ids);  // [L*B*Q, T]
  auto cost_bbox = torch::cdist(out_bbox, tbox, 1);
  auto cost_giou = -util::generalized_box_iou(util::box_cxcywh_to_xyxy(out_bbox), util::box_cxcywh_to_xyxy(tbox));
  auto c = options.cost_bbox() * cost_bbox + options.cost_class() * cost_class + options.cost_giou() * cost_giou;
  return c.view({n_layers, bs, nq, -1});
}

std::vector<Matching> HungarianMatcher::match(const std::vector<Prediction>& layers,
                                              const std::vector<util::Target>& targets) const {
  TORCH_CHECK(!layers.empty(), "HungarianMatcher: no predictions");
  const int64_t bs = layers[0].pred_logits.size(0), nq = layers[0].pred_logits.size(1);
  TORCH_CHECK(static_cast<int64_t>(targets.size()) == bs, "HungarianMatcher: ", targets.size(),
              " targets for a batch of ", bs);
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (const auto& t : targets) {
    sizes.push_back(t.boxes.size(0));
    total += sizes.back();
  }
  std::vector<Matching> result(layers.size(), Matching(bs));
  if (total == 0) return result;

  // One device->host transfer for all layers.
  auto c = cost_matrix(layers, targets).to(torch::kCPU, torch::kFloat).contiguous();
  const float* data = c.data_ptr<float>();  // [L, B, Q, total]
  std::vector<float> block;
  for (size_t l = 0; l < layers.size(); ++l) {
    int64_t offset = 0;
    for (int64_t b = 0; b < bs; ++b) {
      const int64_t nt = sizes[b];
      block.resize(static_cast<size_t>(nq * nt));
      const float* base = data + ((static_cast<int64_t>(l) * bs + b) * nq) * total + offset;
      for (int64_t q = 0; q < nq; ++q) std::copy(base + q * total, base + q * total + nt, block.begin() + q * nt);
      auto a = linear_sum_assignment(block.data(), nq, nt);
      result[l][b] = {std::move(a.row_ind), std::move(a.col_ind)};
      offset += nt;
    }
  }
  return result;
}

Matching HungarianMatcher::operator()(const Prediction& prediction, const std::vector<util::Target>& targets) const {
  return match({prediction}, targets)[0];
}

}  // namespace detr::models
