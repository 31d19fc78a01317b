// A small synthetic CVAT-style COCO export (images/ + annotations/instances_default.json) for the demo,
// tests and benchmarks: coloured shapes on noise, one class per shape, with the quirks of Onepanel's
// CVAT 1.0 dumps (0-based image ids with gaps, frame-number file names, an image without boxes, a crowd
// region as uncompressed RLE, categories 1..N).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "datasets/formats/detect.h"

namespace detr::datasets {

struct SyntheticExportOptions {
  int64_t num_images = 16;
  int64_t width = 160;
  int64_t height = 120;
  int64_t num_classes = 3;  // 1 rectangle, 2 ellipse, 3 triangle, then repeating shapes in other colours
  int64_t max_objects = 3;  // per image (at least 1, except the deliberately empty image)
  uint64_t seed = 0;
  bool cvat_quirks = true;         // id gaps, an image without boxes, one crowd region
  bool no_overlap = false;         // place objects apart (a few retries, then fewer objects): easier to learn
  std::string subset = "default";  // CVAT's subset: "Train", "Validation", ...
};

// Writes root/annotations/instances_<subset>.json (replacing it) and its images: root/images/<id>.jpg
// for the "default" subset, root/images/<subset>/<id>.jpg for the others (CVAT's layouts).
void write_synthetic_cvat_export(const std::filesystem::path& root, const SyntheticExportOptions& options);

// detr_make_dataset's sample as `format`: COCO as write_synthetic_cvat_export writes it;
// the others written from it by write_export (the COCO export made in a temporary folder, removed).
void write_synthetic_export(const std::filesystem::path& root,
                            const SyntheticExportOptions& options,
                            formats::DatasetFormat format);

}  // namespace detr::datasets
