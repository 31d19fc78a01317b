// Ultralytics YOLO (YOLOv8 and later) as CVAT ("Ultralytics YOLO Detection 1.0", "... Segmentation
// 1.0", "... Oriented Bounding Boxes 1.0", "... Pose 1.0"), Datumaro and Ultralytics write it:
//   data.yaml              path: .  /  train: images/train  /  val: images/val  /  test: ...  /
//                          names: a list, or a map {0: name, 1: name, ...}  /  nc: N  /  kpt_shape: [K, D]
//   images/<subset>/<image>             a subset is a folder (its images, recursively), a list file
//                                       (train.txt: one image path a line) or a YAML list of either
//   labels/<subset>/<stem>.txt          the image's path with its last images/ as labels/; one object a
//                                       line, coordinates normalised by the image's width and height:
//     detection       class cx cy w h
//     segmentation    class x1 y1 x2 y2 x3 y3 ...      (the polygon is kept; the box is its bounding box)
//     oriented box    class x1 y1 x2 y2 x3 y3 x4 y4    (trained as its enclosing axis-aligned box)
//     pose            class cx cy w h px1 py1 [v1] ... (kpt_shape [K, D] in data.yaml; the box only)
// Roboflow's layout (<subset>/images, <subset>/labels; data.yaml naming ../train/images) reads the
// same way: a path starting ../ that is not found is retried without it, as Ultralytics does. An
// image without a label file shows no objects. data.yaml is read as the flat mapping these tools
// write (scalars, quoted or plain, flow lists, block lists under train/val/test/names, a names map);
// any other YAML is refused naming the file, line and value.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// The train, val and test subsets data.yaml names (those present). Errors name the file, line and
// field: a missing data.yaml or subset; YAML outside the subset read; names with gaps, duplicates or
// an `nc` other than their count; a label line whose class is not an integer in [0, names), whose
// field count fits no task, or with a coordinate that is not a finite number.
RawExport read_ultralytics(const std::filesystem::path& root);

// What read_ultralytics reads from data.yaml (exposed for the tests).
struct UltralyticsYaml {
  std::string path;  // `path`, "" when absent
  struct Subset {
    std::string key;                  // train, val, test
    std::vector<std::string> values;  // a folder, list file or image; several for a YAML list
    int64_t line = 0;
  };
  std::vector<Subset> subsets;
  std::vector<std::string> names;
  int64_t kpt_values = 0;  // K * D from kpt_shape: [K, D]; 0 without
};
UltralyticsYaml parse_ultralytics_yaml(const std::string& text, const std::filesystem::path& file);

}  // namespace detr::datasets::formats
