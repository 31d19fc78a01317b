// detr_train's command line: upstream main.py's flags (names, defaults, meanings) plus ours.
// Parsing is the only place that sees argv; everything after reads TrainArgs.
#pragma once
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "models/model_config.h"

namespace detr {

// Bad command line: the CLI prints it with a usage hint and exits 2.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TrainArgs {
  // --- upstream main.py ---
  double lr = 1e-4;
  int64_t batch_size = 2;
  double weight_decay = 1e-4;
  int64_t epochs = 300;
  int64_t lr_drop = 200;
  double clip_max_norm = 0.1;
  models::ModelConfig model;    // backbone ... eos_coef, lr_backbone (names as upstream)
  std::string dataset_file = "coco";
  std::string coco_path;
  std::string output_dir;
  std::string device = "auto";  // upstream: cuda. auto = cuda when available, else cpu
  int64_t seed = 42;
  std::string resume;
  int64_t start_epoch = 0;
  bool eval = false;
  int64_t num_workers = 2;
  int64_t world_size = 1;
  std::string dist_url = "env://";
  // --- ours ---
  int64_t num_classes = 0;       // 0: max category id + 1 from the data
  int64_t num_threads = 0;       // 0: all cores
  bool check_data = false;
  bool skip_bad_images = false;
  int64_t max_image_pixels = 178956970;  // datasets::kDefaultMaxImagePixels: PIL's refusal point
  double val_split = -1;         // -1: 0.1 when the export has no validation subset (>= 10 images)
  std::string train_annotations, val_annotations, image_dir;
  std::vector<int64_t> scales;   // empty: upstream's 480..800
  int64_t max_size = 1333;
  int64_t val_size = 800;
  std::string pretrained;        // weights only: our checkpoint, an upstream DETR file, a URL or a zoo name
  std::string backbone_weights = "auto";  // auto (torchvision ImageNet, downloaded) | none | PATH | URL
  int64_t eval_every = 1;
  int64_t print_freq = 10;
  std::string dist_backend;      // "" = nccl on CUDA, gloo on CPU
  double dist_timeout = 1800;    // seconds (PyTorch's default process-group timeout)
  std::string amp = "off";       // off | bf16 | fp16 (mixed precision; upstream has none)
  std::string conv_algorithm = "winograd";  // winograd (oneDNN, CPU, where available) | direct
  bool parse_only = false;       // validate the command line, print the resolved flags, exit
  std::string sys_metrics;       // Onepanel metrics file; "" = /tmp/sys-metrics.json under Onepanel

  nlohmann::json to_json() const;  // every flag, upstream names (stored as checkpoint['args'])
};

// Throws UsageError for unknown flags, bad values or unsupported upstream features (--masks).
// Returns std::nullopt-like empty help text when --help was asked: then `help` is filled.
TrainArgs parse_train_args(int argc, const char* const* argv, std::string* help = nullptr);

}  // namespace detr
