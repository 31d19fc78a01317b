#include "src/train_outputs.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "datasets/coco_mask.h"
#include "datasets/image_io.h"
#include "src/summary_plot.h"
#include "src/tensorboard.h"
#include "util/atomic_file.h"
#include "util/terminal.h"

namespace detr {

namespace fs = std::filesystem;

namespace {

void write_json(const fs::path& path, const nlohmann::json& j, bool compact = false) {
  util::write_file_atomically(path, (compact ? j.dump() : j.dump(1)) + "\n");
}

// A PR curve as TensorBoard's pr_curves plugin keeps one: index i is recall (100 - i) / 100 (the plugin's
// thresholds rise as recall falls), with COCOeval's precision there and the counts that give them:
// TP = recall x ground truth, FP = TP (1 - p) / p, FN = the rest. Where precision is 0 (recall not
// reached) TP and FP are 0, which the plugin leaves out of the drawn curve.
std::array<std::vector<float>, 6> pr_curve_rows(const datasets::CategoryFigures& f, bool at50) {
  std::array<std::vector<float>, 6> rows;
  for (int i = 0; i <= 100; ++i) {
    const int r = 100 - i;
    const double p = std::max(0.0, (at50 ? f.precision50 : f.precision)[r]);
    const double tp = p > 0 ? std::round(r / 100.0 * static_cast<double>(f.num_gt)) : 0;
    const double fp = p > 0 ? std::round(tp * (1 - p) / p) : 0;
    const double values[6] = {tp, fp, 0, static_cast<double>(f.num_gt) - tp, p, r / 100.0};
    for (int k = 0; k < 6; ++k) rows[k].push_back(static_cast<float>(values[k]));
  }
  return rows;
}

std::string numbered(const char* stem, int64_t n, const char* ext) {
  std::ostringstream name;
  name << stem << std::setw(4) << std::setfill('0') << n << ext;
  return name.str();
}

}  // namespace

TrainOutputs::TrainOutputs(const fs::path& dir,
                           bool enabled,
                           const nlohmann::json& config_json,
                           const std::vector<datasets::CocoCategory>& classes)
    : dir_(dir), enabled_(enabled && !dir.empty()) {
  if (!enabled_) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) throw std::runtime_error(dir_.string() + ": cannot create --output_dir");
  datasets::write_classes_csv(classes, dir_ / "classes.csv");
  write_json(dir_ / "config.json", config_json);
  tb_ = std::make_unique<TensorBoardWriter>(dir_ / "tensorboard");
}

TrainOutputs::~TrainOutputs() = default;

void TrainOutputs::save_checkpoint(const CheckpointParts& p, const CheckpointState& state, bool keep_copy) {
  if (!enabled_) return;
  detr::save_checkpoint(checkpoint_path(), p.model.module(), *p.config, *p.optimizer, *p.scheduler, state, *p.args);
  if (keep_copy) util::snapshot_file(checkpoint_path(), dir_ / numbered("checkpoint", state.epoch, ".pth"));
}

void TrainOutputs::save_best(const CheckpointParts& p, const CheckpointState& state) {
  if (enabled_) save_model(dir_ / "best.pth", p.model.module(), *p.config, state, *p.args);
}

void TrainOutputs::write_eval(int64_t epoch, const EvalOutput& ev) {
  if (!enabled_) return;
  fs::create_directories(dir_ / "eval");
  nlohmann::json dets = nlohmann::json::array();
  for (const auto& d : ev.detections)
    dets.push_back({{"image_id", d.image_id},
                    {"category_id", d.category_id},
                    {"bbox", {d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]}},
                    {"score", d.score}});
  // As upstream's eval/: the latest results, and a copy every 50 epochs (results are large).
  const auto latest = dir_ / "eval" / "results_latest.json";
  write_json(latest, dets, /*compact=*/true);
  if (epoch % 50 == 0) util::snapshot_file(latest, dir_ / "eval" / numbered("results_", epoch, ".json"));
  nlohmann::json latest_json{{"epoch", epoch}, {"coco_eval_bbox", ev.coco.stats}, {"results", "results_latest.json"}};
  if (!ev.mask_detections.empty()) {  // segmentation: the masks as COCO results with compressed RLE
    nlohmann::json masks = nlohmann::json::array();
    for (const auto& d : ev.mask_detections)
      masks.push_back({{"image_id", d.image_id},
                       {"category_id", d.category_id},
                       {"score", d.score},
                       {"segmentation",
                        {{"size", {d.segmentation->height, d.segmentation->width}},
                         {"counts", datasets::rle_to_string(*d.segmentation)}}}});
    write_json(dir_ / "eval" / "segm_results_latest.json", masks, /*compact=*/true);
    latest_json["coco_eval_masks"] = ev.coco_masks.stats;
    latest_json["segm_results"] = "segm_results_latest.json";
  }
  if (!ev.per_class.empty()) {
    util::write_file_atomically(dir_ / "eval" / "per_class_latest.csv", datasets::per_class_csv(ev.per_class));
    util::write_file_atomically(
        dir_ / "eval" / "pr_curves_latest.csv",
        datasets::pr_curves_csv(ev.per_class, ev.coco, ev.mask_detections.empty() ? nullptr : &ev.coco_masks));
  }
  if (!ev.confusion.classes.empty())
    util::write_file_atomically(dir_ / "eval" / "confusion_latest.csv", datasets::confusion_csv(ev.confusion));
  write_json(dir_ / "eval" / "latest.json", latest_json);
}

void TrainOutputs::log_epoch(const nlohmann::ordered_json& line) {
  // Names from the data may hold invalid UTF-8: replaced (U+FFFD) rather than failing the epoch.
  if (!enabled_) return;
  util::append_line(dir_ / "log.txt", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  auto name = dir_.lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "out/"
  try {                                                    // a picture: never worth stopping a run for
    write_summary_png(dir_ / "log.txt", dir_ / "summary.png", "detr_train " + name.filename().string());
  } catch (const std::exception& e) {
    std::cerr << "warning: " << util::terminal_safe(e.what(), true) << " (summary.png not updated)\n";
  }
}

void TrainOutputs::step_scalars(const StepOutput& s, double lr, double images_per_s, bool fp16, int64_t step) {
  if (!tb_) return;
  tb_->add_scalar("train/loss", s.loss, step);
  for (const auto& [k, v] : s.terms) tb_->add_scalar("train/" + k, v, step);
  tb_->add_scalar("train/lr", lr, step);
  tb_->add_scalar("train/images_per_s", images_per_s, step);
  tb_->add_scalar("train/grad_norm", s.grad_norm, step);
  if (fp16) tb_->add_scalar("train/loss_scale", s.loss_scale, step);
}

void TrainOutputs::epoch_scalars(const std::vector<std::pair<std::string, double>>& train,
                                 double images_per_s,
                                 const EvalOutput* ev,
                                 int64_t epoch) {
  if (!tb_) return;
  for (const auto& [k, v] : train) tb_->add_scalar("epoch/train_" + k, v, epoch);
  tb_->add_scalar("epoch/images_per_s", images_per_s, epoch);
  if (ev) {
    static const char* names[] = {"AP", "AP50", "AP75", "APs", "APm", "APl"};
    for (int i = 0; i < 6; ++i) tb_->add_scalar(std::string("eval/") + names[i], ev->coco.stats[i], epoch);
    if (!ev->mask_detections.empty())
      for (int i = 0; i < 6; ++i) tb_->add_scalar(std::string("eval/mask_") + names[i], ev->coco_masks.stats[i], epoch);
    tb_->add_scalar("eval/loss", ev->stats.global_avg("loss"), epoch);
    std::map<std::string, int> uses;
    for (const auto& row : ev->per_class) ++uses[row.name];
    // pr_curves/AP50/<name> and pr_curves/AP/<name> (IoU 0.50, and the mean over 0.50:0.95), mask_ too.
    auto pr_curves = [&](const std::string& name, const datasets::CategoryFigures& box,
                         const datasets::CategoryFigures* mask) {
      for (const auto* f : {&box, mask}) {
        if (!f || f->ap < 0) continue;
        const std::string prefix = f == mask ? "pr_curves/mask_" : "pr_curves/";
        tb_->add_pr_curve(prefix + "AP50/" + name, pr_curve_rows(*f, true), epoch);
        tb_->add_pr_curve(prefix + "AP/" + name, pr_curve_rows(*f, false), epoch);
      }
    };
    for (const auto& row : ev->per_class) {  // classes without ground truth (-1) are left out
      // The name as valid UTF-8 without '/' (which would nest the tag); the id where names clash.
      std::string name = util::terminal_safe(row.name, /*newlines_escaped=*/true);
      std::replace(name.begin(), name.end(), '/', '_');
      if (name.empty() || uses[row.name] > 1)
        name += (name.empty() ? "id " : " (id ") + std::to_string(row.id) + (name.empty() ? "" : ")");
      auto add = [&](const std::string& prefix, const datasets::CategoryFigures& f) {
        if (f.ap < 0) return;
        tb_->add_scalar("eval/" + prefix + "AP_per_class/" + name, f.ap, epoch);
        tb_->add_scalar("eval/" + prefix + "AP50_per_class/" + name, f.ap50, epoch);
        tb_->add_scalar("eval/" + prefix + "AR100_per_class/" + name, f.ar100, epoch);
      };
      add("", row.bbox);
      if (row.segm) add("mask_", *row.segm);
      pr_curves(name, row.bbox, row.segm ? &*row.segm : nullptr);
    }
    if (!ev->per_class.empty())
      pr_curves("all", ev->coco.all, ev->mask_detections.empty() ? nullptr : &ev->coco_masks.all);
    try {  // a picture: a failure is a warning
      if (const auto picture = draw_confusion(ev->confusion); !picture.empty())
        tb_->add_image("eval/confusion_matrix", encode_png(picture), picture.rows, picture.cols, epoch);
    } catch (const cv::Exception& e) {
      std::cerr << "warning: the confusion matrix picture: " << util::terminal_safe(e.what(), true) << "\n";
    }
  }
  tb_->flush();
}

void TrainOutputs::validation_images(const EvalOutput& ev,
                                     const datasets::CocoDataset& val,
                                     int64_t count,
                                     int64_t epoch) {
  if (!tb_ || count <= 0) return;
  if (!shown_) shown_ = pick_validation_images(val, static_cast<size_t>(count));
  for (size_t k = 0; k < shown_->size(); ++k) {
    const auto& rec = val.images.at((*shown_)[k]);
    std::string name = util::terminal_safe(rec.path.filename().string(), /*newlines_escaped=*/true);
    std::replace(name.begin(), name.end(), '/', '_');
    try {
      const auto rgb = datasets::load_image_rgb(rec.path, val.max_image_pixels).contiguous();  // [H, W, 3]
      cv::Mat bgr;
      cv::cvtColor(
          cv::Mat(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>()), bgr,
          cv::COLOR_RGB2BGR);
      const auto picture = draw_validation_image(bgr, rec, ev.detections, ev.mask_detections, val.categories);
      char tag[48];
      std::snprintf(tag, sizeof tag, "eval/predictions/%02zu_", k);
      tb_->add_image(tag + name, encode_jpeg(picture), picture.rows, picture.cols, epoch);
    } catch (const std::exception& e) {
      std::cerr << "warning: " << util::terminal_safe(e.what(), true) << " (not drawn into TensorBoard)\n";
    }
  }
}

void TrainOutputs::flush() {
  if (tb_) tb_->flush();
}

void TrainOutputs::write_metrics(const fs::path& path,
                                 double best_ap,
                                 const std::vector<std::pair<std::string, double>>& last_train) {
  if (path.empty()) return;
  nlohmann::json metrics = nlohmann::json::array();
  if (best_ap >= 0) metrics.push_back({{"name", "best AP"}, {"value", best_ap}, {"format", ""}});
  for (const auto& [k, v] : last_train)
    if (k == "loss" || k == "class_error")
      metrics.push_back({{"name", "train " + k}, {"value", v}, {"format", k == "class_error" ? "%" : ""}});
  write_json(path, metrics);
}

}  // namespace detr
