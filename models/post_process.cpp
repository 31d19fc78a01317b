#include "models/post_process.h"

#include "util/box_ops.h"
#include "util/misc.h"

namespace detr::models {

std::vector<Detections> post_process(const Prediction& outputs, const torch::Tensor& target_sizes) {
  torch::NoGradGuard no_grad;
  const auto& logits = outputs.pred_logits;  // [B, Q, C+1]
  TORCH_CHECK(target_sizes.dim() == 2 && target_sizes.size(1) == 2 && target_sizes.size(0) == logits.size(0),
              "post_process: target_sizes must be [", logits.size(0), ", 2], got ", target_sizes.sizes());
  auto prob = logits.softmax(-1);
  auto [scores, labels] = prob.slice(-1, 0, -1).max(-1);
  auto boxes = util::box_cxcywh_to_xyxy(outputs.pred_boxes);
  auto hw = target_sizes.to(boxes.device()).unbind(1);
  auto scale_fct = torch::stack({hw[1], hw[0], hw[1], hw[0]}, 1);  // [B, 4] (w, h, w, h)
  boxes = boxes * scale_fct.unsqueeze(1);
  std::vector<Detections> results;
  for (int64_t b = 0; b < logits.size(0); ++b) results.push_back({scores[b], labels[b], boxes[b]});
  return results;
}

void post_process_segm(std::vector<Detections>& results,
                       const DetrOutput& outputs,
                       const torch::Tensor& orig_target_sizes,
                       const torch::Tensor& max_target_sizes,
                       double threshold) {
  namespace F = torch::nn::functional;
  torch::NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(results.size());
  TORCH_CHECK(outputs.pred_masks.defined() && outputs.pred_masks.dim() == 4 && outputs.pred_masks.size(0) == n,
              "post_process_segm: pred_masks must be [", n, ", Q, h, w], got ",
              outputs.pred_masks.defined() ? outputs.pred_masks.sizes() : c10::IntArrayRef{});
  for (const auto* sizes : {&orig_target_sizes, &max_target_sizes})
    TORCH_CHECK(sizes->dim() == 2 && sizes->size(0) == n && sizes->size(1) == 2,
                "post_process_segm: target sizes must be [", n, ", 2], got ", sizes->sizes());
  const auto max_sizes = max_target_sizes.to(torch::kCPU, torch::kLong);
  const auto orig_sizes = orig_target_sizes.to(torch::kCPU, torch::kLong);
  const auto max_hw = std::get<0>(max_sizes.max(0));
  auto masks = F::interpolate(outputs.pred_masks,
                              F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{max_hw[0].item<int64_t>(), max_hw[1].item<int64_t>()})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
  masks = (masks.sigmoid() > threshold).cpu();  // [B, Q, max_h, max_w] bool
  for (int64_t b = 0; b < n; ++b) {
    results[b].fed_masks =
        masks[b].slice(1, 0, max_sizes[b][0].item<int64_t>()).slice(2, 0, max_sizes[b][1].item<int64_t>()).clone();
    results[b].orig_size = {orig_sizes[b][0].item<int64_t>(), orig_sizes[b][1].item<int64_t>()};
    TORCH_CHECK(results[b].orig_size[0] > 0 && results[b].orig_size[1] > 0,
                "post_process_segm: original sizes must be positive, got ", orig_sizes[b]);
  }
}

torch::Tensor Detections::mask(int64_t q) const {
  TORCH_CHECK(has_masks(), "Detections::mask: no masks (post_process_segm was not run)");
  const auto rows = util::nearest_source_index(fed_masks.size(1), orig_size[0]);
  const auto cols = util::nearest_source_index(fed_masks.size(2), orig_size[1]);
  return fed_masks[q].index_select(0, rows).index_select(1, cols).to(torch::kUInt8);  // [H, W]
}

}  // namespace detr::models
