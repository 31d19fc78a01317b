// Turns model outputs into detections in image coordinates (upstream models/detr.py PostProcess).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/detr.h"

namespace detr::models {

struct Detections {
  torch::Tensor scores;  // [Q] max class probability, "no object" excluded
  torch::Tensor labels;  // [Q] int64 raw category ids
  torch::Tensor boxes;   // [Q, 4] absolute xyxy in the target size's pixels
  torch::Tensor masks;   // [Q, 1, H, W] uint8 0/1 at the original image size (post_process_segm only)
};

// target_sizes: [B, 2] (h, w) of each original image. Returns all Q predictions per image, unfiltered.
std::vector<Detections> post_process(const Prediction& outputs, const torch::Tensor& target_sizes);

// Upstream PostProcessSegm: sets results[b].masks (on the CPU) from outputs.pred_masks [B, Q, H/4, W/4]:
// the logits bilinearly upsampled (align_corners false) to the batch's largest max_target_sizes,
// sigmoid > threshold, cropped to image b's max_target_sizes[b] (its size as fed to the model, before
// padding) and resized by nearest neighbour to orig_target_sizes[b]. Both sizes are [B, 2] (h, w).
void post_process_segm(std::vector<Detections>& results, const DetrOutput& outputs,
                       const torch::Tensor& orig_target_sizes, const torch::Tensor& max_target_sizes,
                       double threshold = 0.5);

}  // namespace detr::models
