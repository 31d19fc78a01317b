#include "util/box_ops.h"

#include <sstream>

namespace detr::util {

torch::Tensor box_cxcywh_to_xyxy(const torch::Tensor& x) {
  auto c = x.unbind(-1);
  const auto& xc = c[0];
  const auto& yc = c[1];
  const auto& w = c[2];
  const auto& h = c[3];
  return torch::stack({xc - 0.5 * w, yc - 0.5 * h, xc + 0.5 * w, yc + 0.5 * h}, -1);
}

torch::Tensor box_xyxy_to_cxcywh(const torch::Tensor& x) {
  auto c = x.unbind(-1);
  const auto& x0 = c[0];
  const auto& y0 = c[1];
  const auto& x1 = c[2];
  const auto& y1 = c[3];
  return torch::stack({(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0}, -1);
}

torch::Tensor box_area(const torch::Tensor& boxes) {
  return (boxes.select(1, 2) - boxes.select(1, 0)) * (boxes.select(1, 3) - boxes.select(1, 1));
}

void check_boxes_xyxy(const torch::Tensor& boxes, const char* what) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, what, " must be [N, 4] xyxy boxes, got ", boxes.sizes());
  auto ok = (boxes.slice(1, 2) >= boxes.slice(1, 0, 2)).all(1);  // false for NaN too
  if (ok.all().item<bool>()) return;
  int64_t i = (~ok).nonzero()[0][0].item<int64_t>();
  auto b = boxes[i].to(torch::kCPU, torch::kDouble);
  std::ostringstream msg;
  msg << what << " holds a degenerate or non-finite box at index " << i << ": [" << b[0].item<double>() << ", "
      << b[1].item<double>() << ", " << b[2].item<double>() << ", " << b[3].item<double>()
      << "] (xyxy needs x1 >= x0 and y1 >= y0; NaN predictions usually mean training diverged:"
      << " lower --lr or check the data)";
  throw std::runtime_error(msg.str());
}

std::pair<torch::Tensor, torch::Tensor> box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2) {
  auto area1 = box_area(boxes1);
  auto area2 = box_area(boxes2);
  auto lt = torch::max(boxes1.unsqueeze(1).slice(2, 0, 2), boxes2.slice(1, 0, 2));  // [N, M, 2]
  auto rb = torch::min(boxes1.unsqueeze(1).slice(2, 2), boxes2.slice(1, 2));        // [N, M, 2]
  auto wh = (rb - lt).clamp_min(0);
  auto inter = wh.select(2, 0) * wh.select(2, 1);  // [N, M]
  auto uni = area1.unsqueeze(1) + area2 - inter;
  return {inter / uni, uni};
}

torch::Tensor generalized_box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2) {
  check_boxes_xyxy(boxes1, "generalized_box_iou: boxes1");
  check_boxes_xyxy(boxes2, "generalized_box_iou: boxes2");
  auto [iou, uni] = box_iou(boxes1, boxes2);
  auto lt = torch::min(boxes1.unsqueeze(1).slice(2, 0, 2), boxes2.slice(1, 0, 2));
  auto rb = torch::max(boxes1.unsqueeze(1).slice(2, 2), boxes2.slice(1, 2));
  auto wh = (rb - lt).clamp_min(0);
  auto area = wh.select(2, 0) * wh.select(2, 1);
  return iou - (area - uni) / area;
}

torch::Tensor generalized_box_iou_paired(const torch::Tensor& boxes1, const torch::Tensor& boxes2) {
  check_boxes_xyxy(boxes1, "generalized_box_iou: boxes1");
  check_boxes_xyxy(boxes2, "generalized_box_iou: boxes2");
  TORCH_CHECK(boxes1.size(0) == boxes2.size(0), "generalized_box_iou_paired: ", boxes1.size(0), " boxes vs ",
              boxes2.size(0));
  auto area1 = box_area(boxes1);
  auto area2 = box_area(boxes2);
  auto lt = torch::max(boxes1.slice(1, 0, 2), boxes2.slice(1, 0, 2));  // [N, 2]
  auto rb = torch::min(boxes1.slice(1, 2), boxes2.slice(1, 2));
  auto wh = (rb - lt).clamp_min(0);
  auto inter = wh.select(1, 0) * wh.select(1, 1);
  auto uni = area1 + area2 - inter;
  auto iou = inter / uni;
  auto lt_c = torch::min(boxes1.slice(1, 0, 2), boxes2.slice(1, 0, 2));
  auto rb_c = torch::max(boxes1.slice(1, 2), boxes2.slice(1, 2));
  auto wh_c = (rb_c - lt_c).clamp_min(0);
  auto area = wh_c.select(1, 0) * wh_c.select(1, 1);
  return iou - (area - uni) / area;
}

}  // namespace detr::util
