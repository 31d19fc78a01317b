// Box utilities (upstream util/box_ops.py). Boxes are [..., 4]: cxcywh or xyxy as named.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace detr::util {

torch::Tensor box_cxcywh_to_xyxy(const torch::Tensor& x);  // [..., 4] -> [..., 4]
torch::Tensor box_xyxy_to_cxcywh(const torch::Tensor& x);  // [..., 4] -> [..., 4]
torch::Tensor box_area(const torch::Tensor& boxes);        // [N, 4] xyxy -> [N]

// Pairwise IoU of xyxy boxes: {iou [N, M], union [N, M]}.
std::pair<torch::Tensor, torch::Tensor> box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2);

// Pairwise generalized IoU (https://giou.stanford.edu/) of xyxy boxes: [N, M].
// Throws (naming the argument, index and box) where a box is degenerate (x1 < x0 or y1 < y0)
// or not finite: upstream asserts there; NaN predictions usually mean a diverged model.
torch::Tensor generalized_box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2);

// GIoU of corresponding rows: [N] — equal to diag(generalized_box_iou(a, b)) element for element.
torch::Tensor generalized_box_iou_paired(const torch::Tensor& boxes1, const torch::Tensor& boxes2);

// The degenerate/non-finite check used by the two functions above.
void check_boxes_xyxy(const torch::Tensor& boxes, const char* what);

}  // namespace detr::util
