// Batching helpers (upstream util/misc.py): NestedTensor, padding collation, targets.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace detr::util {

// A padded image batch. tensors: [B, 3, H, W] float; mask: [B, H, W] bool, true on padding.
struct NestedTensor {
  torch::Tensor tensors;
  torch::Tensor mask;

  NestedTensor to(const torch::Device& device, bool non_blocking = false) const;
};

// Pads [3, h_i, w_i] images bottom/right with 0 to the batch's max size (upstream
// nested_tensor_from_tensor_list); the mask is false on each image's valid h_i x w_i region.
NestedTensor nested_tensor_from_tensor_list(const std::vector<torch::Tensor>& images);

// One image's annotations as the model sees them (upstream's target dict).
struct Target {
  torch::Tensor boxes;      // [N, 4] float, normalized cxcywh
  torch::Tensor labels;     // [N] int64, raw category ids
  torch::Tensor image_id;   // [1] int64 (optional)
  torch::Tensor orig_size;  // [2] int64 (h, w) before augmentation (optional)
  torch::Tensor size;       // [2] int64 (h, w) after augmentation (optional)
  torch::Tensor area;       // [N] float (optional)
  torch::Tensor iscrowd;    // [N] int64 (optional)
  torch::Tensor masks;      // [N, H, W] bool, the image's size (segmentation only: --masks)

  Target to(const torch::Device& device, bool non_blocking = false) const;
};

// The source index of each of `out` samples when torch's legacy "nearest" interpolation (upstream's
// interpolate(..., mode="nearest")) resizes `in` samples to `out`, on one axis (the 2-D kernel treats
// the axes independently), computed by torch's own kernel so it is exact for every ratio. Selecting
// these rows and columns equals the interpolation without its float copy. -> [out] int64
torch::Tensor nearest_source_index(int64_t in, int64_t out);

// Top-1 accuracy in percent of logits [N, C] against labels [N]; 0 when N == 0 (upstream accuracy()).
torch::Tensor accuracy(const torch::Tensor& output, const torch::Tensor& target);

}  // namespace detr::util
