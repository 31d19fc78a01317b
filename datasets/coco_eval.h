// COCO bounding-box evaluation equal to pycocotools' COCOeval(iouType='bbox'): evaluate(), accumulate()
// and summarize() with the default parameters (IoU .50:.05:.95, recall 0:.01:1, areas all/small/medium/large
// from the ground truth's `area` field, maxDets 1/10/100). Pure C++17 on plain structs: no LibTorch.
//
//   auto gt = load_coco_ground_truth("instances_val2017.json");
//   auto dt = load_coco_results("results.json", gt);
//   auto result = evaluate_bbox(gt, dt);
//   std::cout << format_summary(result);
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/coco.h"  // CocoCategory

namespace detr::datasets {

struct CocoImage {
  int64_t id = 0;
  int64_t width = 0, height = 0;  // 0 when the file does not say
};

// A ground-truth annotation or a detection. For detections `id`, `area` and `iscrowd` are what
// COCO.loadRes sets (index + 1, w*h, false); evaluate_bbox recomputes them and reads only image_id,
// category_id, bbox and score.
struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  std::array<double, 4> bbox{};  // x, y, width, height
  double area = 0;               // ground truth: the file's `area` (decides small/medium/large)
  bool iscrowd = false;
  double score = 1;
};

struct CocoGroundTruth {
  std::vector<CocoImage> images;
  std::vector<CocoCategory> categories;
  std::vector<CocoAnnotation> annotations;
};

// Reads a COCO instances file. Requires `images`, `categories` and `annotations` arrays; each image and
// category needs an integer `id`; each annotation `id`, `image_id`, `category_id`, `bbox` (4 numbers) and
// `area` (`iscrowd` defaults to 0). Duplicate ids and annotations naming an unknown image or category are
// errors. Throws std::runtime_error "<path>: <what>" naming the entry and field.
CocoGroundTruth load_coco_ground_truth(const std::string& path);
CocoGroundTruth parse_coco_ground_truth(std::string_view json_text, const std::string& source);

// Reads a COCO results file (a JSON array of {image_id, category_id, bbox, score}) like COCO.loadRes for
// bbox: id = index + 1, area = w*h, iscrowd = false. An image_id that is not a ground-truth image is an
// error; an unknown category_id is kept (COCOeval ignores it, as DETR's unused label ids need).
std::vector<CocoAnnotation> load_coco_results(const std::string& path, const CocoGroundTruth& gt);
std::vector<CocoAnnotation> parse_coco_results(std::string_view json_text, const std::string& source,
                                               const CocoGroundTruth& gt);

struct CocoEvalResult {
  // COCOeval.stats: AP, AP50, AP75, AP small/medium/large, AR@1, AR@10, AR@100, AR small/medium/large.
  // -1 where nothing was evaluated (no ground truth in that setting).
  std::array<double, 12> stats{};
  // Per ground-truth category: AP@[.5:.95], area all, maxDets 100; -1 for a category without ground truth.
  std::map<int64_t, double> per_category_ap;
};

// COCOeval over all ground-truth images and categories (sorted ids). Detections on categories that are
// not in the ground truth are ignored; a detection on an unknown image, or with a non-finite score,
// throws std::runtime_error. pycocotools cannot load an empty result list (COCO.loadRes raises), so an
// empty `detections` gives stats all -1 and no per-category entries ("nothing to evaluate", as the golden
// data records it). Upstream DETR's evaluator scores an empty result list against an empty COCO() instead,
// which gives AP 0 where ground truth exists; DETR's post-processing never yields an empty list. A non-empty list that misses a category gives that category AP 0.
// pycocotools quirk kept: a ground-truth annotation with id 0 never counts as a true positive.
CocoEvalResult evaluate_bbox(const CocoGroundTruth& gt, const std::vector<CocoAnnotation>& detections);

// The 12 lines COCOeval.summarize() prints, each ending in '\n'.
std::string format_summary(const CocoEvalResult& result);

}  // namespace detr::datasets
