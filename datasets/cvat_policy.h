// What a CVAT export means where upstream's COCO reading disagrees (applied to a loaded dataset, the
// same way for training and evaluation):
// - CVAT writes brush and SAM masks as RLE with iscrowd 1; upstream drops every crowd annotation, so
//   those objects would vanish. With CrowdPolicy::auto they are objects when the export is CVAT's
//   (its annotations carry `attributes`), crowd regions otherwise.
// - A box that disagrees with its own mask (real exports have every box off its polygon): counted, and
//   with boxes_from_masks replaced by the mask's box.
#pragma once
#include <cstdint>
#include <string>

#include "datasets/coco.h"

namespace detr::datasets {

enum class CrowdPolicy { kAuto, kIgnore, kObjects };  // --crowd auto | ignore | objects
CrowdPolicy parse_crowd_policy(const std::string& name);
std::string to_string(CrowdPolicy policy);

struct AnnotationPolicy {
  CrowdPolicy crowd = CrowdPolicy::kAuto;
  bool boxes_from_masks = false;  // --boxes_from_masks
  bool check_boxes = false;       // compare every box with its mask (decodes each segmentation once)
  double box_tolerance = 1.0;     // pixels a box may differ from its mask's box before it disagrees
};

struct PolicyReport {
  int64_t crowd_as_objects = 0;   // RLE crowd annotations turned into objects
  int64_t boxes_checked = 0;      // objects with a segmentation
  int64_t boxes_disagreeing = 0;  // box off its mask's box by more than the tolerance
  int64_t boxes_replaced = 0;     // with boxes_from_masks
  double worst_pixels = 0;        // the largest disagreement
  std::string worst;              // "image id 3, annotation id 7: box [...] vs mask [...]"
  std::string summary() const;    // one line; "" when nothing to say
};

// Applies the policy to `data` in place. Segmentations are read as pycocotools reads them (object_rle).
// Throws naming file and annotation on a segmentation that cannot be decoded.
PolicyReport apply_policy(CocoDataset& data, const AnnotationPolicy& policy);

}  // namespace detr::datasets
