// What a user reads to see *how* a detector fails, beside COCO's 12 numbers: the figures of each class
// (from the same COCOeval run as the AP) and a confusion matrix of boxes. Tables as CSV, for
// eval/per_class_latest.csv, eval/confusion_latest.csv and detr_eval --per_class / --confusion.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "datasets/coco_eval.h"

namespace detr::datasets {

// One ground-truth category's figures: bbox, and segm where masks were evaluated.
struct PerClassRow {
  std::string name;
  int64_t id = 0;
  CategoryFigures bbox;
  std::optional<CategoryFigures> segm;
};

// The result's categories (ground truth's, by id) named from `categories`; segm may be null.
std::vector<PerClassRow> per_class_rows(const std::vector<CocoCategory>& categories,
                                        const CocoEvalResult& bbox,
                                        const CocoEvalResult* segm = nullptr);
// Header "class,id,AP,AP50,AR100" (then "segm_AP,segm_AP50,segm_AR100" with masks), a row per class; -1
// where a class has no ground truth. Names are quoted as CSV needs.
std::string per_class_csv(const std::vector<PerClassRow>& rows);

// The precision-recall curves behind those figures: header "class,id,iou,recall,precision" (then
// "segm_precision" with masks), for each class and then "all" (the mean over classes, id empty), at
// IoU "0.50" and "0.50:0.95" (the mean over the ten thresholds), at COCOeval's 101 recall points.
std::string pr_curves_csv(const std::vector<PerClassRow>& rows,
                          const CocoEvalResult& bbox,
                          const CocoEvalResult* segm = nullptr);

// Boxes matched at IoU >= iou between detections scored >= score_threshold and ground truth, whatever
// their classes (docs/outputs.md: "Confusion matrix"):
//  - per image, its 100 best-scored such detections (COCOeval's maxDets) are paired with its boxes, the
//    pairs taken in decreasing IoU (ties: higher score first), each box and each detection at most once;
//  - a matched pair counts in cell (its ground-truth class, its detected class);
//  - a ground-truth box left unmatched counts in (its class, background): missed;
//  - a detection left unmatched counts in (background, its class): a false positive, a duplicate
//    included; one that lies mostly inside a crowd region of its class (intersection / its own area >=
//    iou) is not counted, as COCOeval ignores it; crowd regions are never matched themselves;
//  - detections of a category the ground truth does not have are left out.
constexpr size_t kConfusionMaxDets = 100;

struct ConfusionMatrix {
  std::vector<CocoCategory> classes;         // ground truth's categories, by id; background is index n
  std::vector<std::vector<int64_t>> counts;  // [n + 1][n + 1]: row = ground truth, column = detection
  double iou = 0.5, score_threshold = 0.5;
};
ConfusionMatrix confusion_matrix(const CocoDataset& gt,
                                 const std::vector<CocoResult>& detections,
                                 double score_threshold = 0.5,
                                 double iou = 0.5);
// Header "ground_truth\detected,<class>,...,background", a row per class then background; a class
// whose name another has (or "background") is written "<name> (id N)".
std::string confusion_csv(const ConfusionMatrix& m);

}  // namespace detr::datasets
