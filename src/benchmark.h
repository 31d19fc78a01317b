// detr_bench: training / evaluation throughput on a generated CVAT-style export, per phase, with
// peak memory — the figures BENCHMARKS.md reports. Warm-up excluded; several repetitions; medians.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace detr {

struct BenchOptions {
  std::string config = "default";  // default (R50, 256, 6+6, 100 queries) | small (R18, 128, 2+2, 20 queries)
  int64_t batch_size = 2;
  int64_t warmup = 1;              // steps not measured
  int64_t steps = 3;               // measured steps per repetition
  int64_t repeats = 3;
  std::string mode = "train";      // train | eval | both | data (the loader alone)
  int64_t width = 640, height = 480;
  int64_t num_workers = 2;
  int64_t num_threads = 0;         // 0 = all cores
  std::string device = "auto";
  std::string amp = "off";         // off | bf16 | fp16 (training only)
  std::string conv_algorithm = "winograd";  // winograd | direct (CPU 3x3 convolutions)
  std::string data_dir;            // "" = a temporary folder
  uint64_t seed = 0;
};

// Runs the benchmark, printing progress; returns the figures as JSON.
nlohmann::json run_benchmark(const BenchOptions& options);

// A table of run_benchmark's JSON for people.
std::string format_benchmark(const nlohmann::json& result);

}  // namespace detr
