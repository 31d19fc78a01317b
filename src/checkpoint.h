// detr_train's checkpoints (upstream main.py's checkpoint.pth): torch.save zip files that Python's
// torch.load(..., weights_only=True) reads as plain dicts —
//   model        state_dict under upstream's keys
//   optimizer    {'state': {i: {'step', 'exp_avg', 'exp_avg_sq'}}, 'param_groups': [...]} as AdamW's
//   lr_scheduler {'step_size', 'gamma', 'last_epoch', 'base_lrs', '_last_lr', ...} as StepLR's
//   epoch        the last finished epoch
//   args         every flag as a plain dict (upstream pickles an argparse.Namespace)
// and ours: model_config (rebuilds the model from the file alone), classes ([{id, name}]),
// step_in_epoch (> 0: interrupted inside epoch + 1 after that many steps), images_per_step
// (batch_size × world size of the run that wrote it), format_version.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "models/detr.h"
#include "models/model_config.h"
#include "src/optimizer.h"

namespace detr {
namespace serialization {
class PyValue;
}

constexpr int64_t kCheckpointFormatVersion = 1;

// Runs fn; an error that does not name the file yet ("expected a state dict, got list", a missing
// key, a state dict that does not fit the model) gets its path, as one line.
template <typename Fn>
auto naming_file(const std::filesystem::path& path, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw std::runtime_error(path.string() + ": " + what.substr(0, what.find('\n')));
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.rfind(path.string(), 0) == 0) throw;
    throw std::runtime_error(path.string() + ": " + what);
  }
}

struct CheckpointState {
  int64_t epoch = -1;
  int64_t step_in_epoch = 0;
  int64_t images_per_step = 0;  // batch_size × world size; 0 = unknown (older files)
  double best_ap = -1;
  double loss_scale = 0;  // fp16 GradScaler state (0: none)
  int64_t scaler_growth_tracker = 0;
  std::vector<datasets::CocoCategory> classes;
};

// The full resume state (upstream's checkpoint.pth). Writes atomically (temp file + rename).
void save_checkpoint(const std::filesystem::path& path,
                     const torch::nn::Module& model,
                     const models::ModelConfig& config,
                     const AdamW& optimizer,
                     const StepLR& scheduler,
                     const CheckpointState& state,
                     const nlohmann::json& args);

// The model for inference, CVAT and fine-tuning (best.pth): the same file without optimizer,
// lr_scheduler and scaler state — a third of the size with AdamW. --resume from it restarts the
// optimizer; --pretrained and detr_predict read it as any checkpoint.
void save_model(const std::filesystem::path& path,
                const torch::nn::Module& model,
                const models::ModelConfig& config,
                const CheckpointState& state,
                const nlohmann::json& args);

// What a checkpoint's args say that the weights cannot show: an upstream file's argparse Namespace
// (nheads, dilation) or our dict (val_size, max_size), each checked for range.
struct CheckpointArgs {
  std::optional<int64_t> nheads, val_size, max_size;
  std::optional<bool> dilation;
};

// What a torch.save file offers: ours, upstream's checkpoint.pth / model-zoo files, or a plain
// state dict. The one reader of checkpoints (training's --pretrained, --frozen_weights and --resume,
// detr_predict, Detector, detr_inspect): the file is read once, every field checked on the way in.
struct LoadedCheckpoint {
  std::filesystem::path path;
  std::map<std::string, torch::Tensor> model;       // state dict (float32 conversion on load), finite
  std::optional<models::ModelConfig> model_config;  // ours only
  std::optional<CheckpointState> state;             // epoch etc., when present
  std::vector<datasets::CocoCategory> classes;      // ours; empty for upstream files
  CheckpointArgs args;
  bool has_optimizer = false;                          // optimizer + lr_scheduler present
  std::shared_ptr<const serialization::PyValue> root;  // the file as read: restore_optimizer takes it from here
};

LoadedCheckpoint load_checkpoint(const std::filesystem::path& path);
// The same for a file serialization::torch_load has read already.
LoadedCheckpoint read_checkpoint(std::shared_ptr<const serialization::PyValue> root, const std::filesystem::path& path);

// backbone, layer counts, widths, queries, classes, pre-norm, position embedding and masks (DETRsegm's
// detr.* keys) from the keys and shapes of a DETR state dict (dilation cannot be seen in weights:
// `dilation` gives it).
models::ModelConfig infer_model_config(const std::map<std::string, torch::Tensor>& state, bool dilation = false);

// The network a checkpoint holds: its model_config, else the one its weights show with what its args
// add. Either way every size is checked against the weights before anything is built (a model_config
// is a claim; a crafted one would allocate without bound).
models::ModelConfig checkpoint_model_config(const LoadedCheckpoint& ck, bool dilation = false);

// One line: the network (checkpoint_model_config's), epoch, classes and whether an optimizer state
// is there; throws what checkpoint_model_config throws for a file that is not a DETR model.
std::string describe(const LoadedCheckpoint& ck);

// Restores AdamW moments/steps and StepLR from a checkpoint of ours or upstream's.
void restore_optimizer(const LoadedCheckpoint& ck, AdamW& optimizer, StepLR& scheduler);

// --resume / --pretrained take a file or a directory; a directory is probed as Onepanel lays out
// /mnt/data/models: {output/model, model, output, .}/ for checkpoint.pth, then any *.pth (newest).
std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& file_or_dir);

}  // namespace detr
