// KITTI 1.0 object detection as CVAT and Datumaro write it:
//   <subset>/label_2/<stem>.txt   one object a line, space-separated:
//                                 type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]
//   <subset>/image_2/<stem>.<ext> the images (every one is an image, with or without a label file)
// or label_2/ and image_2/ directly in the root (subset "default"). The box is left, top, right,
// bottom in pixels; the 3D fields and the score are not read (they must be numbers).
// Categories are the types in order of first appearance (subsets and files in name order), as
// Datumaro's importer numbers them. Decisions:
//  - DontCare objects are ignore regions (iscrowd) of their own category "DontCare": not trained on;
//    COCO's evaluation ignores detections of that category alone on them, where KITTI's benchmark
//    ignores any class's;
//  - truncated and occluded objects train.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Errors name the file, line and field: a line without 15 or 16 fields, a field that is not a finite
// number, a box whose right or bottom is left of or above its left or top.
RawExport read_kitti(const std::filesystem::path& root);

// The folders of root that hold label_2/ (root itself first when it does), in name order.
std::vector<std::filesystem::path> kitti_subset_dirs(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
