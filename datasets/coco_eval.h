// COCO evaluation equal to pycocotools' COCOeval with iouType 'bbox' or 'segm': evaluate(), accumulate()
// and summarize() with the default parameters (IoU .50:.05:.95, recall 0:.01:1, areas all/small/medium/large
// from the ground truth's `area` field, maxDets 1/10/100). Pure C++17 on plain structs: no LibTorch.
// The ground truth is a CocoDataset (datasets/coco.h), from load_coco_annotations or load_coco; the two
// IoU types differ only in the overlap of a detection and an object (boxes, or masks by coco_mask.h).
//
//   auto gt = load_coco_annotations("instances_val2017.json");
//   auto dt = load_coco_results("results.json", gt);
//   auto result = evaluate(gt, dt, IouType::segm);
//   std::cout << format_summary(result);
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/coco.h"       // CocoDataset
#include "datasets/coco_mask.h"  // Rle

namespace detr::datasets {

// One detection as COCO.loadRes leaves it. loadRes also gives each an id (index + 1) and iscrowd 0;
// evaluation derives these itself.
struct CocoResult {
  int64_t image_id = 0;
  int64_t category_id = 0;       // the raw category id (one that is not in the ground truth is ignored)
  std::array<double, 4> bbox{};  // x, y, width, height in pixels of the original image
  double score = 0;
  std::optional<Rle> segmentation;  // the mask (segm), of its image's height x width; absent: the
                                    // filled box, the mask loadRes gives a box result
  std::optional<double> area;       // loadRes's area where it is not bbox w*h: a mask's area for
                                    // results without a box (loadRes's segmentation branch)
};

// A mask result as COCO.loadRes reads one without a box (upstream DETR's segm results): bbox =
// to_bbox(mask), area = area(mask). What an evaluation loop appends for each predicted mask.
CocoResult make_segm_result(int64_t image_id, int64_t category_id, Rle mask, double score);

// Reads a COCO results file (a JSON array of {image_id, category_id, score} with a `bbox` and/or a
// `segmentation`; other fields are ignored) as COCO.loadRes does, which decides by the first result:
//  - it has a non-empty `bbox`: every result needs a bbox and its area is w*h; a `segmentation`, where
//    present, is read as COCO.annToRLE reads one (read against its image's size);
//  - else it has a `segmentation`: every result needs a compressed RLE {"size": [h, w], "counts": "..."},
//    its area is the mask's, its bbox the given one or else to_bbox of the mask.
// An RLE's size must be its image's declared [height, width]. Throws std::runtime_error
// "<path>: results[i]: <what>" naming the field; an image_id that is not a ground-truth image is an
// error; an unknown category_id is kept (COCOeval ignores it, as DETR's unused label ids need).
std::vector<CocoResult> load_coco_results(const std::string& path, const CocoDataset& gt);
std::vector<CocoResult> parse_coco_results(std::string_view json_text,
                                           const std::string& source,
                                           const CocoDataset& gt);

enum class IouType { bbox, segm };

// "bbox" / "segm" (pycocotools' iouType names); parse_iou_type throws std::invalid_argument otherwise.
const char* iou_type_name(IouType type);
IouType parse_iou_type(const std::string& name);

// One category's figures from COCOeval's arrays (area all, maxDets 100), or the mean over categories
// (`all`): what pycocotools' precision[:, :, k, 0, 2] and recall[:, k, 0, 2] give, averaged over the
// entries > -1. -1 where there is no ground truth.
struct CategoryFigures {
  double ap = -1;      // mean precision over IoU 0.50:0.95 and the 101 recall thresholds
  double ap50 = -1;    // the same at IoU 0.50
  double ar100 = -1;   // mean recall over IoU 0.50:0.95
  int64_t num_gt = 0;  // ground-truth objects that count (not crowd, not ignored), area all
  // Precision-recall curves: precision at recall r / 100 (r = 0..100, COCOeval's recThrs), at IoU 0.50
  // and averaged over 0.50:0.95 (precision is 0 past the largest recall reached).
  std::array<double, 101> precision50{}, precision{};
};

struct CocoEvalResult {
  // COCOeval.stats: AP, AP50, AP75, AP small/medium/large, AR@1, AR@10, AR@100, AR small/medium/large.
  // -1 where nothing was evaluated (no ground truth in that setting).
  std::array<double, 12> stats{};
  // Per ground-truth category: AP@[.5:.95], area all, maxDets 100; -1 for a category without ground truth.
  std::map<int64_t, double> per_category_ap;
  std::map<int64_t, CategoryFigures> per_category;  // the same categories, every figure
  CategoryFigures all;                              // the mean over categories: ap = stats[0], ...
};

// COCOeval over all ground-truth images and categories (sorted ids), every annotation of gt.images
// included (crowd regions too, as pycocotools reads the file). Detections on categories that are
// not in the ground truth are ignored; a detection on an unknown image, or with a non-finite score,
// throws std::runtime_error. pycocotools cannot load an empty result list (COCO.loadRes raises), so an
// empty `detections` gives stats all -1 and no per-category entries ("nothing to evaluate", as the golden
// data records it). Upstream DETR's evaluator scores an empty result list against an empty COCO() instead,
// which gives AP 0 where ground truth exists; DETR's post-processing never yields an empty list. A
// non-empty list that misses a category gives that category AP 0.
// pycocotools quirk kept: a ground-truth annotation with id 0 never counts as a true positive.
//
// segm: IoU of masks (coco_mask.h's iou, intersection / detection area against a crowd region), the
// objects' masks by object_rle (an empty segmentation, CVAT's rectangles, is its filled box where
// pycocotools raises) and the detections' by their `segmentation` (absent: the filled box). Every image
// holding objects or detections must declare its height and width (annToRLE reads them); a detection
// mask of another size is an error. Areas as bbox: the objects' `area`, the detections' area.
CocoEvalResult evaluate(const CocoDataset& gt, const std::vector<CocoResult>& detections, IouType iou_type);
CocoEvalResult evaluate_bbox(const CocoDataset& gt, const std::vector<CocoResult>& detections);
CocoEvalResult evaluate_segm(const CocoDataset& gt, const std::vector<CocoResult>& detections);

// The 12 lines COCOeval.summarize() prints, each ending in '\n'.
std::string format_summary(const CocoEvalResult& result);

}  // namespace detr::datasets
