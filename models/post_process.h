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
};

// target_sizes: [B, 2] (h, w) of each original image. Returns all Q predictions per image, unfiltered.
std::vector<Detections> post_process(const Prediction& outputs, const torch::Tensor& target_sizes);

}  // namespace detr::models
