#include "datasets/cvat_policy.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "datasets/coco_mask.h"

namespace detr::datasets {

CrowdPolicy parse_crowd_policy(const std::string& name) {
  if (name == "auto") return CrowdPolicy::kAuto;
  if (name == "ignore") return CrowdPolicy::kIgnore;
  if (name == "objects") return CrowdPolicy::kObjects;
  throw std::invalid_argument("--crowd must be auto, ignore or objects, got '" + name + "'");
}

std::string to_string(CrowdPolicy policy) {
  return policy == CrowdPolicy::kIgnore ? "ignore" : policy == CrowdPolicy::kObjects ? "objects" : "auto";
}

namespace {

std::string box_text(const std::array<double, 4>& b) {
  std::ostringstream o;
  o << "[" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << "]";
  return o.str();
}

// The object's box against its mask's (both xywh); replaces it with the mask's box when asked.
void check_box(const CocoImageRecord& rec, CocoObject& o, const AnnotationPolicy& policy, PolicyReport& r) {
  if (o.segmentation.empty()) return;  // a rectangle: its mask is its box
  const auto mask_box = to_bbox(object_rle(o, rec.height, rec.width));
  double off = 0;
  for (int k = 0; k < 4; ++k)
    off = std::max(off, std::abs(mask_box[static_cast<size_t>(k)] - o.bbox[static_cast<size_t>(k)]));
  ++r.boxes_checked;
  if (off > policy.box_tolerance) {
    ++r.boxes_disagreeing;
    if (off > r.worst_pixels) {
      r.worst_pixels = off;
      r.worst = "image id " + std::to_string(rec.id) + ", annotation id " + std::to_string(o.id) + ": box " +
                box_text(o.bbox) + " vs its mask's " + box_text(mask_box);
    }
  }
  if (policy.boxes_from_masks && off > 0) {
    o.bbox = mask_box;
    ++r.boxes_replaced;
  }
}

}  // namespace

PolicyReport apply_policy(CocoDataset& data, const AnnotationPolicy& policy) {
  PolicyReport r;
  const bool crowd_objects =
      policy.crowd == CrowdPolicy::kObjects || (policy.crowd == CrowdPolicy::kAuto && data.cvat_attributes);
  for (auto& rec : data.images)
    for (auto& o : rec.objects) {
      try {
        if (policy.check_boxes || policy.boxes_from_masks) check_box(rec, o, policy, r);
      } catch (const std::exception& e) {
        throw std::runtime_error(data.annotation_file.string() + ": annotation id " + std::to_string(o.id) + ": " +
                                 e.what());
      }
      if (crowd_objects && o.iscrowd && o.segmentation.rle) {
        o.iscrowd = false;
        ++r.crowd_as_objects;
      }
    }
  return r;
}

std::string PolicyReport::summary() const {
  std::ostringstream o;
  if (crowd_as_objects)
    o << crowd_as_objects
      << " RLE crowd annotations (CVAT's brush/SAM masks) train as objects (--crowd ignore drops them, as upstream); ";
  if (boxes_disagreeing)
    o << boxes_disagreeing << " of " << boxes_checked << " boxes differ from their masks by more than 1 px (worst "
      << worst_pixels << " px: " << worst << ")"
      << (boxes_replaced ? "; replaced by the masks' boxes" : "; --boxes_from_masks derives them from the masks")
      << "; ";
  auto s = o.str();
  if (s.size() >= 2) s.resize(s.size() - 2);
  return s;
}

}  // namespace detr::datasets
