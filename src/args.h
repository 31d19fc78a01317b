// detr_train's command line: upstream main.py's flags (names, defaults, meanings) plus ours, declared
// once in args.cpp's table. Parsing is the only place that sees argv and the environment; everything
// after reads TrainArgs and Launch.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "src/flags.h"

namespace detr {

struct TrainArgs {
  // --- upstream main.py ---
  double lr = 1e-4;
  double lr_backbone = 1e-5;  // <= 0 freezes the backbone (model.train_backbone)
  int64_t batch_size = 2;
  double weight_decay = 1e-4;
  int64_t epochs = 300;
  int64_t lr_drop = 200;
  double clip_max_norm = 0.1;
  models::ModelConfig model;  // backbone ... eos_coef (names as upstream)
  std::string dataset_file = "coco";
  std::string coco_path;                                           // the export's root, whatever its format
  std::optional<datasets::formats::DatasetFormat> dataset_format;  // none: detected (--dataset_format auto)
  std::string output_dir;
  std::optional<torch::Device> device;  // upstream: cuda. none (auto) = cuda when available, else cpu
  int64_t seed = 42;
  std::string resume;
  std::string frozen_weights;  // segmentation's second stage: a trained box model, frozen (--masks)
  int64_t start_epoch = 0;
  bool eval = false;
  int64_t num_workers = 2;
  int64_t world_size = 1;
  std::string dist_url = "env://";
  // --- ours ---
  int64_t num_classes = 0;  // 0: max category id + 1 from the data
  int64_t num_threads = 0;  // 0: OMP_NUM_THREADS, else this process's share of the CPUs
  bool check_data = false;
  bool skip_bad_images = false;
  int64_t max_image_pixels = 178956970;  // datasets::kDefaultMaxImagePixels: PIL's refusal point
  double val_split = -1;                 // -1: 0.1 when the export has no validation subset (>= 10 images)
  std::string train_annotations, val_annotations, image_dir;
  std::vector<int64_t> scales;  // empty: upstream's 480..800
  int64_t max_size = 1333;
  int64_t val_size = 800;
  std::string pretrained;                 // weights only: our checkpoint, an upstream DETR file, a URL or a zoo name
  std::string backbone_weights = "auto";  // auto (torchvision ImageNet, downloaded) | none | PATH | URL
  datasets::CrowdPolicy crowd = datasets::CrowdPolicy::kAuto;  // RLE crowd annotations: objects for CVAT exports
  bool boxes_from_masks = false;                               // each box from its object's mask
  int64_t eval_every = 1;
  int64_t tb_images = 8;  // validation images drawn into TensorBoard at each evaluation
  datasets::IouType best_metric = datasets::IouType::bbox;  // best.pth by box AP, or mask AP (segm)
  int64_t print_freq = 10;
  DistBackend dist_backend = DistBackend::kAuto;
  double dist_timeout = 1800;       // seconds (PyTorch's default process-group timeout)
  Precision amp = Precision::fp32;  // off | bf16 | fp16 (mixed precision; upstream has none)
  models::ConvAlgorithm conv_algorithm = models::ConvAlgorithm::kWinograd;  // CPU 3x3 convolutions
  bool parse_only = false;  // validate the command line, print the resolved flags, exit
  std::string sys_metrics;  // Onepanel metrics file; "" = /tmp/sys-metrics.json under Onepanel

  nlohmann::json to_json() const;  // every flag, upstream names (stored as checkpoint['args'])
  RunOptions run_options() const;  // the job's settings (RunContext)
};

struct ParsedTrainCommand {
  TrainArgs args;
  Launch launch;     // the environment, read here and nowhere below
  std::string help;  // non-empty: --help (or --help_markdown) was asked: print this instead of running
};

// Throws UsageError for unknown flags, bad values or unsupported upstream features (--masks).
ParsedTrainCommand parse_train_command(int argc, const char* const* argv);

}  // namespace detr
