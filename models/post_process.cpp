#include "models/post_process.h"

#include "src/util/box_ops.h"

namespace detr::models {

std::vector<Detections> post_process(const Prediction& outputs, const torch::Tensor& target_sizes) {
  torch::NoGradGuard no_grad;
  const auto& logits = outputs.pred_logits;  // [B, Q, C+1]
  TORCH_CHECK(target_sizes.dim() == 2 && target_sizes.size(1) == 2 &&
                  target_sizes.size(0) == logits.size(0),
              "post_process: target_sizes must be [", logits.size(0), ", 2], got ",
              target_sizes.sizes());
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

}  // namespace detr::models
