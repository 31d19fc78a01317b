// COCO detection datasets as CVAT, Datumaro and upstream lay them out (upstream datasets/coco.py):
// discovery under --coco_path, parsing with validation that names file and id, and the per-image
// records the transforms turn into training samples. No tensors here.
#pragma once
#include "datasets/image_header.h"
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace detr::datasets {

// One split's annotation file and the folder its file_names are relative to.
struct CocoSplit {
  std::filesystem::path annotation_file;
  std::filesystem::path image_dir;
  std::string subset;  // "default", "Train", "train2017", ...
};

struct CocoLayout {
  std::string kind;                // "cvat", "cvat-subsets", "upstream", "explicit"
  CocoSplit train;
  std::optional<CocoSplit> val;    // absent: split train (--val_split) or validate on train
};

// Explicit paths that take precedence over discovery (empty = discover).
struct CocoPathOverrides {
  std::string train_annotations;   // --train_annotations
  std::string val_annotations;     // --val_annotations
  std::string image_dir;           // --image_dir
};

// Looks under root for, in order: explicit overrides; upstream's layout
// (annotations/instances_{train,val}2017.json + {train,val}2017/); CVAT subset files
// (annotations/instances_<Subset>.json: Train/Validation/..., default); throws one message listing
// every path looked for when nothing matches.
CocoLayout discover_coco(const std::filesystem::path& root, const CocoPathOverrides& overrides = {});

struct CocoObject {
  int64_t id = 0;
  int64_t category_id = 0;
  std::array<double, 4> bbox{};  // xywh as in the file (absolute pixels)
  double area = 0;               // the annotation's (segmentation) area
  bool iscrowd = false;
};

struct CocoImageRecord {
  int64_t id = 0;
  std::filesystem::path path;      // resolved on disk
  int64_t width = 0, height = 0;   // as declared in the file
  std::vector<CocoObject> objects; // crowd objects included (upstream drops them per sample)
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

struct DataSummary {
  int64_t images = 0;              // usable images
  int64_t images_without_boxes = 0;
  int64_t boxes = 0;               // boxes that train (after upstream's drops)
  int64_t crowd_dropped = 0;       // iscrowd = 1, dropped as upstream
  int64_t degenerate_dropped = 0;  // empty after clamping to the image, dropped as upstream
  int64_t skipped_images = 0;      // bad images skipped with --skip_bad_images
  int64_t file_name_fallbacks = 0; // file_name not found as given, found by basename
  std::vector<std::string> warnings;
  std::vector<std::string> skipped;  // one line per skipped image: why
};

struct CocoDataset {
  std::filesystem::path annotation_file;
  std::vector<CocoImageRecord> images;   // sorted by id (upstream: sorted(coco.imgs.keys()))
  std::vector<CocoCategory> categories;  // sorted by id
  DataSummary summary;
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // decode limit (CocoLoadOptions)

  int64_t max_category_id() const;       // num_classes = this + 1 (upstream's convention)
};

// The largest class head a category id may ask for (num_classes = max id + 1): 100,000 outputs are
// 25.6 M parameters at hidden_dim 256, with AdamW state 300 MB. Beyond it the ids are surely not
// meant as class indices.
constexpr int64_t kMaxNumClasses = 100'000;

struct CocoLoadOptions {
  bool skip_bad_images = false;  // skip (and count) images that would make training wrong
  bool decode_images = false;    // decode every image now (--check_data) to find corrupt files
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // refuse images whose header declares more
};

// Parses and validates one annotation file. Errors (std::runtime_error) name the file and the
// image/annotation id: missing or ill-typed fields, bbox without 4 finite numbers, negative sizes,
// unknown category or image ids, duplicate ids, images missing on disk or undecodable, no images.
CocoDataset load_coco(const CocoSplit& split, const CocoLoadOptions& options = {});

// upstream's ConvertCocoPolysToMask for one image of size w x h: drops crowd objects, converts
// xywh -> xyxy, clamps to the image, keeps boxes with x1 > x0 and y1 > y0.
struct CleanObjects {
  std::vector<std::array<float, 4>> boxes_xyxy;
  std::vector<int64_t> labels;
  std::vector<float> areas;
};
CleanObjects convert_objects(const std::vector<CocoObject>& objects, int64_t width, int64_t height);

// Deterministic split by image (seeded shuffle), for exports with one subset: returns {train, val}.
// fraction in (0, 1): the share of images that validate (at least one image each side).
std::pair<CocoDataset, CocoDataset> split_dataset(const CocoDataset& data, double fraction,
                                                  uint64_t seed);

// classes.csv as the Onepanel workflow expects it: header "labels,id", then one "name,id" row per
// category in id order. Written to a temp file and renamed.
void write_classes_csv(const std::vector<CocoCategory>& categories, const std::filesystem::path& path);

// One-paragraph human summary of a dataset for start-up logs.
std::string format_summary(const CocoDataset& data, const std::string& name);

}  // namespace detr::datasets
