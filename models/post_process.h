// Turns model outputs into detections in image coordinates (upstream models/detr.py PostProcess).
#pragma once
#include <torch/torch.h>

#include <array>
#include <vector>

#include "models/detr.h"

namespace detr::models {

struct Detections {
  torch::Tensor scores;  // [Q] max class probability, "no object" excluded
  torch::Tensor labels;  // [Q] int64 raw category ids
  torch::Tensor boxes;   // [Q, 4] absolute xyxy in the target size's pixels
  // post_process_segm only: each query's mask at the size fed to the model, and the original image's
  // size (h, w). mask(q) is upstream's mask at the original size, made one query at a time, so that
  // a large image never costs Q x H x W.
  torch::Tensor fed_masks;  // [Q, h, w] bool (CPU)
  std::array<int64_t, 2> orig_size{};

  bool has_masks() const { return fed_masks.defined(); }
  // Query q's mask [H, W] uint8 0/1 at orig_size: fed_masks[q] resized by nearest neighbour (upstream's
  // F.interpolate(masks.float(), orig_size, mode="nearest").byte(), without the float copy).
  torch::Tensor mask(int64_t q) const;
};

// target_sizes: [B, 2] (h, w) of each original image. Returns all Q predictions per image, unfiltered.
std::vector<Detections> post_process(const Prediction& outputs, const torch::Tensor& target_sizes);

// Upstream PostProcessSegm: sets results[b]'s masks (on the CPU) from outputs.pred_masks [B, Q, H/4, W/4]:
// the logits bilinearly upsampled (align_corners false) to the batch's largest max_target_sizes,
// sigmoid > threshold, cropped to image b's max_target_sizes[b] (its size as fed to the model, before
// padding: fed_masks); Detections::mask(q) resizes one by nearest neighbour to orig_target_sizes[b].
// Both sizes are [B, 2] (h, w).
void post_process_segm(std::vector<Detections>& results,
                       const DetrOutput& outputs,
                       const torch::Tensor& orig_target_sizes,
                       const torch::Tensor& max_target_sizes,
                       double threshold = 0.5);

}  // namespace detr::models
