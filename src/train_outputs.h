// Everything detr_train writes to --output_dir, which the Onepanel workflow uploads for CVAT and the
// user (upstream main.py's output_dir handling, plus ours):
//   config.json, classes.csv                 at start
//   checkpoint.pth                           full resume state, every epoch (and when stopped)
//   checkpointNNNN.pth                       a copy before each lr drop and every 100 epochs, as upstream
//   best.pth                                 the model at the best box AP, for inference and fine-tuning:
//                                            weights, configuration and classes, no optimizer state
//   log.txt                                  one JSON line per epoch, upstream's keys
//   summary.png                              loss and AP over the epochs, redrawn after each
//   eval/latest.json, eval/results_*.json    COCO results (latest, and every 50 epochs as upstream)
//   tensorboard/                             scalars per step and epoch
//   the Onepanel metrics file                at the end (--sys_metrics)
// Each file is written whole (temp file + rename) or appended a whole line at a time, so a kill never
// leaves one half-written. Only the main rank writes; elsewhere, and without --output_dir, a
// TrainOutputs writes nothing.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/build.h"
#include "src/checkpoint.h"
#include "src/engine.h"

namespace detr {

class TensorBoardWriter;

// What a checkpoint is made of; the writer adds nothing of its own.
struct CheckpointParts {
  models::DetrModel model;
  const models::ModelConfig* config = nullptr;
  const AdamW* optimizer = nullptr;
  const StepLR* scheduler = nullptr;
  const nlohmann::json* args = nullptr;
};

class TrainOutputs {
 public:
  // dir empty or `enabled` false: writes nothing. Otherwise creates dir and writes config.json and
  // classes.csv.
  TrainOutputs(const std::filesystem::path& dir,
               bool enabled,
               const nlohmann::json& config_json,
               const std::vector<datasets::CocoCategory>& classes);
  ~TrainOutputs();

  bool enabled() const { return enabled_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path checkpoint_path() const { return dir_ / "checkpoint.pth"; }

  // checkpoint.pth after `epoch` (step_in_epoch > 0: stopped inside the next epoch), plus upstream's
  // numbered copy when keep_copy.
  void save_checkpoint(const CheckpointParts& parts, const CheckpointState& state, bool keep_copy = false);
  // best.pth: the model alone (no optimizer state).
  void save_best(const CheckpointParts& parts, const CheckpointState& state);
  void write_eval(int64_t epoch, const EvalOutput& ev);
  void log_epoch(const nlohmann::ordered_json& line);

  // TensorBoard: one training step (global step numbering), one epoch's means and evaluation.
  void step_scalars(const StepOutput& s, double lr, double images_per_s, bool fp16, int64_t global_step);
  void epoch_scalars(const std::vector<std::pair<std::string, double>>& train,
                     double images_per_s,
                     const EvalOutput* ev,
                     int64_t epoch);
  void flush();
  // TensorBoard eval/predictions/NN_<file>: `count` validation images (chosen at the first call, the
  // same ever after) with their ground truth and this evaluation's detections. An image that cannot be
  // read is left out with a warning.
  void validation_images(const EvalOutput& ev, const datasets::CocoDataset& val, int64_t count, int64_t epoch);

  // The Onepanel task metrics, [{"name", "value", "format"}], to `path` (empty: nothing).
  static void write_metrics(const std::filesystem::path& path,
                            double best_ap,
                            const std::vector<std::pair<std::string, double>>& last_train);

 private:
  std::filesystem::path dir_;
  bool enabled_ = false;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::optional<std::vector<size_t>> shown_;  // validation_images' choice, made once
};

}  // namespace detr
