// detr_eval --gt GT.json --dt RESULTS.json [--iou_type bbox|segm] [--json]: COCO evaluation equal to
// pycocotools' COCOeval(iouType='bbox' or 'segm'). Prints summarize()'s 12 lines, or with --json
// {"stats": [12 numbers], "per_category_ap": {"<category id>": ap, ...}}. --per_class FILE writes each
// class's AP, AP50 and AR100 as CSV, --confusion FILE the confusion matrix of boxes (datasets/eval_tables.h).
// Exit codes: 0 done, 1 bad input (one line "detr_eval: error: <file>: <what>"), 2 usage.
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

#include "datasets/coco_eval.h"
#include "datasets/eval_tables.h"
#include "util/atomic_file.h"
#include "src/cli/guarded_main.h"

namespace {

void print_json(const detr::datasets::CocoEvalResult& result) {
  nlohmann::ordered_json out;  // stats first, categories in id order
  out["stats"] = result.stats;
  out["per_category_ap"] = nlohmann::ordered_json::object();
  for (const auto& [category, ap] : result.per_category_ap) out["per_category_ap"][std::to_string(category)] = ap;
  std::cout << out.dump() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("detr_eval",
                           "COCO evaluation of a results file against a ground-truth instances file, equal to "
                           "pycocotools' COCOeval: bounding boxes (--iou_type bbox) or masks (--iou_type segm).");
  options.add_options()("gt", "COCO ground-truth instances JSON", cxxopts::value<std::string>())(
      "dt",
      "COCO results JSON: an array of {image_id, category_id, score} with a bbox [x, y, w, h] and/or a "
      "segmentation (compressed RLE {size: [h, w], counts: \"...\"})",
      cxxopts::value<std::string>())(
      "iou_type",
      "bbox: IoU of boxes; segm: IoU of masks (objects by their segmentation, CVAT's empty ones by their "
      "box; detections by their RLE, else their box)",
      cxxopts::value<std::string>()->default_value("bbox"))(
      "json", "print {\"stats\": [...], \"per_category_ap\": {...}} instead of the summary table")(
      "per_class", "also write each class's AP, AP50 and AR100 (of --iou_type) to this CSV file (columns class,id,AP,AP50,AR100)",
      cxxopts::value<std::string>())(
      "confusion",
      "also write the confusion matrix of boxes to this CSV file (rows: ground truth, columns: detected, "
      "background last; matched at IoU 0.5)",
      cxxopts::value<std::string>())(
      "confusion_threshold", "the score a detection needs to count in the confusion matrix",
      cxxopts::value<double>()->default_value("0.5"))(
      "h,help", "print this help");
  return detr::guarded_main("detr_eval", [&]() -> int {
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    if (!args.unmatched().empty())
      throw cxxopts::exceptions::exception("unexpected argument '" + args.unmatched().front() + "'");
    if (!args.count("gt") || !args.count("dt")) throw cxxopts::exceptions::exception("--gt and --dt are required");

    auto iou_type = detr::datasets::IouType::bbox;
    try {
      iou_type = detr::datasets::parse_iou_type(args["iou_type"].as<std::string>());
    } catch (const std::invalid_argument& e) {  // a usage error (exit 2)
      throw cxxopts::exceptions::exception(std::string("--iou_type: ") + e.what());
    }

    const double threshold = args["confusion_threshold"].as<double>();
    if (!(threshold >= 0 && threshold <= 1))
      throw cxxopts::exceptions::exception("--confusion_threshold must be in [0, 1], got " + std::to_string(threshold));
    const auto gt = detr::datasets::load_coco_annotations(args["gt"].as<std::string>());
    const auto dt = detr::datasets::load_coco_results(args["dt"].as<std::string>(), gt);
    const auto result = detr::datasets::evaluate(gt, dt, iou_type);
    if (args.count("per_class"))
      detr::util::write_file_atomically(args["per_class"].as<std::string>(),
                                        detr::datasets::per_class_csv(detr::datasets::per_class_rows(gt.categories, result)));
    if (args.count("confusion")) {
      detr::util::write_file_atomically(args["confusion"].as<std::string>(),
                                        detr::datasets::confusion_csv(detr::datasets::confusion_matrix(gt, dt, threshold)));
    }
    if (args.count("json"))
      print_json(result);
    else
      std::cout << detr::util::terminal_safe(detr::datasets::format_summary(result)) << std::flush;
    return 0;
  });
}
