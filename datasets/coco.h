// COCO detection datasets as CVAT, Datumaro and upstream lay them out (upstream datasets/coco.py):
// discovery under --coco_path, one annotation-file reader with validation that names file, record and
// field, and the per-image records that training turns into samples and evaluation scores detections
// against. No tensors here.
#pragma once
#include "datasets/coco_mask.h"
#include "datasets/image_header.h"
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace detr::datasets {

// One split's annotation file and the folder its file_names are relative to.
struct CocoSplit {
  std::filesystem::path annotation_file;
  std::filesystem::path image_dir;
  std::string subset;  // "default", "Train", "train2017", ...
};

struct CocoLayout {
  std::string kind;  // "cvat", "cvat-subsets", "upstream", "roboflow", "explicit"
  CocoSplit train;
  std::optional<CocoSplit> val;  // absent: split train (--val_split) or validate on train
};

// Explicit paths that take precedence over discovery (empty = discover).
struct CocoPathOverrides {
  std::string train_annotations;  // --train_annotations
  std::string val_annotations;    // --val_annotations
  std::string image_dir;          // --image_dir
};

// Looks under root for, in order: explicit overrides; upstream's layout
// (annotations/instances_{train,val}2017.json + {train,val}2017/); CVAT subset files
// (annotations/instances_<Subset>.json: Train/Validation/..., default); Roboflow's subset folders
// (<subset>/_annotations.coco.json beside the images: train, valid, test); throws one message listing
// every path looked for when nothing matches.
constexpr const char* kRoboflowCocoFile = "_annotations.coco.json";
CocoLayout discover_coco(const std::filesystem::path& root, const CocoPathOverrides& overrides = {});

// One annotation of the file: the ground truth both for training and for evaluation.
struct CocoObject {
  int64_t id = 0;
  int64_t category_id = 0;
  std::array<double, 4> bbox{};  // xywh as in the file (absolute pixels)
  double area = 0;               // the file's `area` (decides COCO's small/medium/large); w*h when a
                                 // training file omits it
  bool iscrowd = false;
  Segmentation segmentation;  // the file's `segmentation`, checked and kept compactly (coco_mask.h);
                              // empty where the file has none, null or [] (CVAT's rectangles)
};

// The object's mask on its image of height x width as COCO.annToRLE gives it: its polygons' union or
// its RLE. An empty segmentation gives the filled box (rle_from_box, the mask COCO.loadRes gives box
// results): CVAT writes `"segmentation": []` for rectangles, on which upstream's pycocotools raises.
// Throws std::runtime_error "annotation id <id>: <field>: <what>" (the caller adds the file). Inline,
// so that evaluation (coco_eval.cpp) links with the mask codec alone.
inline Rle object_rle(const CocoObject& object, int64_t height, int64_t width) {
  try {
    if (object.segmentation.empty()) return rle_from_box(object.bbox, height, width);
    return segmentation_rle(object.segmentation, height, width);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("annotation id " + std::to_string(object.id) + ": " + e.what());
  }
}

struct CocoImageRecord {
  int64_t id = 0;
  std::string file_name;            // as in the file ("" when an evaluation file has none)
  std::filesystem::path path;       // resolved on disk by load_coco; empty from load_coco_annotations
  int64_t width = 0, height = 0;    // as declared in the file (0 when an evaluation file omits them)
  std::vector<CocoObject> objects;  // every annotation of the image in file order, crowd ones included
                                    // (training drops them per sample as upstream; evaluation ignores
                                    // detections inside them as pycocotools)
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

struct DataSummary {
  int64_t images = 0;  // usable images
  int64_t images_without_boxes = 0;
  int64_t boxes = 0;                // boxes that train (after upstream's drops)
  int64_t crowd_dropped = 0;        // iscrowd = 1, dropped as upstream
  int64_t degenerate_dropped = 0;   // empty after clamping to the image, dropped as upstream
  int64_t skipped_images = 0;       // bad images skipped with --skip_bad_images
  int64_t file_name_fallbacks = 0;  // file_name not found as given, found by basename
  std::vector<std::string> warnings;
  std::vector<std::string> skipped;  // one line per skipped image: why
};

struct CocoDataset {
  std::filesystem::path annotation_file;
  std::vector<CocoImageRecord> images;                // sorted by id (upstream: sorted(coco.imgs.keys()))
  std::vector<CocoCategory> categories;               // sorted by id
  DataSummary summary;                                // filled by load_coco (zero from load_coco_annotations)
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // decode limit (CocoLoadOptions)
  bool cvat_attributes = false;                       // annotations carry CVAT's `attributes`: a CVAT export

  int64_t max_category_id() const;  // num_classes = this + 1 (upstream's convention)
};

// The largest class head a category id may ask for (num_classes = max id + 1): 100,000 outputs are
// 25.6 M parameters at hidden_dim 256, with AdamW state 300 MB. Beyond it the ids are surely not
// meant as class indices.
constexpr int64_t kMaxNumClasses = 100'000;

struct CocoLoadOptions {
  bool skip_bad_images = false;                       // skip (and count) images that would make training wrong
  bool decode_images = false;                         // decode every image now (--check_data) to find corrupt files
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // refuse images whose header declares more
};

// One reader for annotation files, used by training and by evaluation. Errors are
// std::runtime_error "<file>: <record>: <what>", the record named by position until its id is read
// ("annotations[3]") and by id after ("annotation id 17"). Every file must be a JSON object with
// `images`, `categories` and `annotations` lists, whose ids are integers within int64 (an integral
// float such as 3.0 is the integer, as in Python), unique per list; each annotation names a listed
// image and category and has a `bbox` of 4 numbers; `iscrowd` is absent, null, a boolean or an
// integer; `file_name`, `width`, `height` and a category's `name`, where present, are well typed.
// A `segmentation`, where present, is read by read_segmentation (coco_mask.h): polygons (checked,
// not rasterised: memory follows the file, never height*width) or an RLE whose `size` is its image's
// declared [height, width]; anything pycocotools' annToRLE would raise on is an error naming the
// annotation and field ("annotation id 17: segmentation.size: ...").
//
// The ground truth of an evaluation (detr_eval --gt; pycocotools' COCO(file)): images are not looked
// for on disk (path stays empty) and may omit file_name, width and height; every annotation needs the
// `area` that decides its size range. parse_coco_annotations reads the text of a file named `source`.
CocoDataset load_coco_annotations(const std::filesystem::path& json);
CocoDataset parse_coco_annotations(std::string_view json_text, const std::string& source);

// A training or validation split: the same reader with what training needs besides: at least one
// category, category ids 0..kMaxNumClasses-1 each with a name; images with a file_name and a positive
// width and height; `area` defaults to w*h. Every image is then found on disk (as given, else by basename) and
// its header read: missing, oversized (max_image_pixels), undecodable (decode_images) or of another
// size than declared, or holding a box of negative size, an image is an error naming it, or with
// skip_bad_images skipped and counted. No usable images is an error. Fills `summary`.
CocoDataset load_coco(const CocoSplit& split, const CocoLoadOptions& options = {});

// upstream's ConvertCocoPolysToMask for one image of size w x h: drops crowd objects, converts
// xywh -> xyxy, clamps to the image, keeps boxes with x1 > x0 and y1 > y0.
struct CleanObjects {
  std::vector<std::array<float, 4>> boxes_xyxy;
  std::vector<int64_t> labels;
  std::vector<float> areas;
  std::vector<size_t> kept;  // each kept object's index in `objects` (its mask: object_rle)
};
CleanObjects convert_objects(const std::vector<CocoObject>& objects, int64_t width, int64_t height);

// Deterministic split by image (seeded shuffle), for exports with one subset: returns {train, val}.
// fraction in (0, 1): the share of images that validate (at least one image each side).
std::pair<CocoDataset, CocoDataset> split_dataset(const CocoDataset& data, double fraction, uint64_t seed);

// classes.csv as the Onepanel workflow expects it: header "labels,id", then one "name,id" row per
// category in id order. Written to a temp file and renamed.
void write_classes_csv(const std::vector<CocoCategory>& categories, const std::filesystem::path& path);

// One-paragraph human summary of a dataset for start-up logs.
std::string format_summary(const CocoDataset& data, const std::string& name);

}  // namespace detr::datasets
