// The tiny DETR the training tests run (R18, hidden 32, 1+2 layers, 8 queries, no dropout): fast on
// CPU, yet every part of the network, matcher and losses is there.
#pragma once
#include <filesystem>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "models/model_config.h"

namespace detr::testing {

inline models::ModelConfig tiny_train_config(int64_t num_classes = 4) {
  models::ModelConfig c;
  c.backbone = "resnet18";
  c.hidden_dim = 32;
  c.nheads = 2;
  c.enc_layers = 1;
  c.dec_layers = 2;
  c.dim_feedforward = 64;
  c.num_queries = 8;
  c.num_classes = num_classes;
  c.dropout = 0;
  return c;
}

// A generated export of `images` 96x80 images in dir/data (with or without the quirks of real CVAT
// dumps); returns that folder.
inline std::filesystem::path write_tiny_export(const std::filesystem::path& dir,
                                               int64_t images,
                                               bool cvat_quirks = false) {
  datasets::SyntheticExportOptions so;
  so.num_images = images;
  so.width = 96;
  so.height = 80;
  so.cvat_quirks = cvat_quirks;
  datasets::write_synthetic_cvat_export(dir / "data", so);
  return dir / "data";
}

// One fixed batch of such an export (written in dir/data) through the validation transforms (shorter
// side 80), so that the same tensors come back on every call.
inline datasets::Batch tiny_fixed_batch(const std::filesystem::path& dir, int64_t images) {
  write_tiny_export(dir, images);
  auto data = datasets::load_coco(datasets::discover_coco(dir / "data").train);
  datasets::CocoDetection ds(data, datasets::TransformConfig::with_scales({80}, 128, 80), false);
  std::vector<datasets::Sample> samples;
  for (size_t i = 0; i < ds.size(); ++i) samples.push_back(ds.get(i, 0));
  return datasets::collate(samples);
}

}  // namespace detr::testing
