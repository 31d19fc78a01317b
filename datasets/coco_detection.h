// A COCO split as training samples (upstream datasets/coco.py CocoDetection + ConvertCocoPolysToMask
// + make_coco_transforms): decode, drop crowd and degenerate boxes, transform.
#pragma once
#include <cstdint>

#include "datasets/coco.h"
#include "datasets/transforms.h"

namespace detr::datasets {

class CocoDetection {
 public:
  // masks: transformed samples carry target.masks (upstream --masks), one per kept object, decoded at
  // their final size only (load() keeps them as RLEs, Sample::mask_rles).
  CocoDetection(CocoDataset data, TransformConfig config, bool train, bool masks = false);

  size_t size() const { return data_.images.size(); }
  // The transformed sample at `index`; `seed` alone decides its random augmentation, so a sample is
  // the same whichever thread makes it.
  Sample get(size_t index, uint64_t seed) const;
  // Decoded and converted, before any transform: image [3, H, W] float 0..255, boxes xyxy absolute,
  // masks as RLEs (mask_rles).
  Sample load(size_t index) const;

  const CocoDataset& data() const { return data_; }
  const TransformConfig& config() const { return config_; }
  bool train() const { return train_; }
  bool masks() const { return masks_; }

 private:
  CocoDataset data_;
  TransformConfig config_;
  bool train_;
  bool masks_;
};

}  // namespace detr::datasets
