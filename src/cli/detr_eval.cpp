// detr_eval --gt GT.json --dt RESULTS.json [--iou_type bbox|segm] [--json]: COCO evaluation equal to
// pycocotools' COCOeval(iouType='bbox' or 'segm'). Prints summarize()'s 12 lines, or with --json
// {"stats": [12 numbers], "per_category_ap": {"<category id>": ap, ...}}. --per_class FILE writes each
// class's AP, AP50 and AR100 as CSV, --confusion FILE the confusion matrix of boxes (datasets/eval_tables.h).
// Exit codes: 0 done, 1 bad input (one line "detr_eval: error: <file>: <what>"), 2 usage.
#include <nlohmann/json.hpp>

#include <iostream>
#include <string>

#include "datasets/coco_eval.h"
#include "datasets/eval_tables.h"
#include "util/atomic_file.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"

namespace {

struct EvalCommand {
  std::string gt, dt;
  detr::datasets::IouType iou_type = detr::datasets::IouType::bbox;
  bool json = false;
  std::string per_class, confusion;
  double confusion_threshold = 0.5;
};

detr::FlagTable<EvalCommand> flag_table() {
  using C = EvalCommand;
  detr::FlagTable<C> t("detr_eval",
                       "COCO evaluation of a results file against a ground-truth instances file, equal to "
                       "pycocotools' COCOeval: bounding boxes (--iou_type bbox) or masks (--iou_type segm).");
  const char* g = "";
  // clang-format off
  t.add(g, "gt", "COCO ground-truth instances JSON", &C::gt);
  t.add(g, "dt", "COCO results JSON: an array of {image_id, category_id, score} with a bbox [x, y, w, h] and/or a segmentation (compressed RLE {size: [h, w], counts: \"...\"})", &C::dt);
  t.add(g, "iou_type", "bbox: IoU of boxes; segm: IoU of masks (objects by their segmentation, CVAT's empty ones by their box; detections by their RLE, else their box)", &C::iou_type);
  t.add_switch(g, "json", "print {\"stats\": [...], \"per_category_ap\": {...}} instead of the summary table", [](C& c) -> bool& { return c.json; });
  t.add(g, "per_class", "also write each class's AP, AP50 and AR100 (of --iou_type) to this CSV file (columns class,id,AP,AP50,AR100)", &C::per_class);
  t.add(g, "confusion", "also write the confusion matrix of boxes to this CSV file (rows: ground truth, columns: detected, background last; matched at IoU 0.5)", &C::confusion);
  t.add(g, "confusion_threshold", "the score a detection needs to count in the confusion matrix", &C::confusion_threshold);
  // clang-format on
  return t;
}

void validate(const EvalCommand& c) {
  if (c.gt.empty() || c.dt.empty()) throw detr::UsageError("--gt and --dt are required");
  if (!(c.confusion_threshold >= 0 && c.confusion_threshold <= 1))
    throw detr::UsageError("--confusion_threshold must be in [0, 1], got " + std::to_string(c.confusion_threshold));
}

void print_json(const detr::datasets::CocoEvalResult& result) {
  nlohmann::ordered_json out;  // stats first, categories in id order
  out["stats"] = result.stats;
  out["per_category_ap"] = nlohmann::ordered_json::object();
  for (const auto& [category, ap] : result.per_category_ap) out["per_category_ap"][std::to_string(category)] = ap;
  std::cout << out.dump() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_eval", [&]() -> int {
    EvalCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    validate(c);
    const auto gt = detr::datasets::load_coco_annotations(c.gt);
    const auto dt = detr::datasets::load_coco_results(c.dt, gt);
    const auto result = detr::datasets::evaluate(gt, dt, c.iou_type);
    if (!c.per_class.empty())
      detr::util::write_file_atomically(
          c.per_class, detr::datasets::per_class_csv(detr::datasets::per_class_rows(gt.categories, result)));
    if (!c.confusion.empty())
      detr::util::write_file_atomically(
          c.confusion, detr::datasets::confusion_csv(detr::datasets::confusion_matrix(gt, dt, c.confusion_threshold)));
    if (c.json)
      print_json(result);
    else
      std::cout << detr::util::terminal_safe(detr::datasets::format_summary(result)) << std::flush;
    return 0;
  });
}
