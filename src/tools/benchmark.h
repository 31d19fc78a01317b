// detr_bench: training / evaluation throughput on a generated CVAT-style export, per phase, with
// peak memory — the figures BENCHMARKS.md reports. Warm-up excluded; several repetitions; medians.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <optional>
#include <string>

#include "models/winograd_conv.h"
#include "src/amp.h"
#include "src/run_context.h"

namespace detr {

struct BenchOptions {
  std::string config =
      "default";  // default (R50, 256, 6+6, 100 queries) | small (R18, 128, 2+2, 20 queries) | small_r50
  int64_t batch_size = 2;
  int64_t warmup = 1;  // steps not measured
  int64_t steps = 3;   // measured steps per repetition
  int64_t repeats = 3;
  bool masks = false;          // the segmentation model (DETRsegm, --masks) on masks of the boxes
  std::string mode = "train";  // train | eval | both | data (the loader alone)
  int64_t width = 640, height = 480;
  int64_t num_workers = 2;
  int64_t num_threads = 0;              // 0: OMP_NUM_THREADS, else this process's share of the CPUs
  std::optional<torch::Device> device;  // none: CUDA when available
  Precision amp = Precision::fp32;      // training only
  models::ConvAlgorithm conv_algorithm = models::ConvAlgorithm::kWinograd;  // CPU 3x3 convolutions
  int64_t profile = 0;   // > 0: the measured steps under LibTorch's profiler, this many ops by self time
  std::string data_dir;  // "" = a temporary folder
  uint64_t seed = 0;
};

// Runs the benchmark, printing progress on stderr; returns the figures as JSON. In a job launched with
// RANK/WORLD_SIZE it measures data-parallel training.
nlohmann::json run_benchmark(const BenchOptions& options, const Launch& launch);

// A table of run_benchmark's JSON for people.
std::string format_benchmark(const nlohmann::json& result);

}  // namespace detr
