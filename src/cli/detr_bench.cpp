// detr_bench: training / evaluation throughput at a named configuration on generated data.
// Prints a table on stdout and, with --json FILE, writes the figures as JSON. Launched with RANK /
// WORLD_SIZE (torchrun --no-python detr_bench ...), it measures data-parallel training.
#include <cxxopts.hpp>
#include <torch/torch.h>

#include <fstream>
#include <iostream>

#include "src/benchmark.h"
#include "src/cli/guarded_main.h"
#include "src/util/atomic_file.h"

int main(int argc, char** argv) {
  cxxopts::Options options("detr_bench", "DETR training/evaluation throughput on a generated CVAT-style export.");
  detr::BenchOptions d;
  // clang-format off
  options.add_options()
    ("config", "default | small", cxxopts::value<std::string>()->default_value(d.config))
    ("batch_size", "images per step", cxxopts::value<int64_t>()->default_value(std::to_string(d.batch_size)))
    ("warmup", "unmeasured steps first", cxxopts::value<int64_t>()->default_value(std::to_string(d.warmup)))
    ("steps", "measured steps per repetition", cxxopts::value<int64_t>()->default_value(std::to_string(d.steps)))
    ("repeats", "repetitions (medians reported)", cxxopts::value<int64_t>()->default_value(std::to_string(d.repeats)))
    ("mode", "train | eval | both", cxxopts::value<std::string>()->default_value(d.mode))
    ("width", "generated image width", cxxopts::value<int64_t>()->default_value(std::to_string(d.width)))
    ("height", "generated image height", cxxopts::value<int64_t>()->default_value(std::to_string(d.height)))
    ("num_workers", "loader threads", cxxopts::value<int64_t>()->default_value(std::to_string(d.num_workers)))
    ("num_threads", "intra-op threads (0 = all cores)", cxxopts::value<int64_t>()->default_value("0"))
    ("device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value(d.device))
    ("amp", "off | bf16 | fp16 (training)", cxxopts::value<std::string>()->default_value(d.amp))
    ("conv_algorithm", "winograd | direct (CPU 3x3 convolutions)", cxxopts::value<std::string>()->default_value(d.conv_algorithm))
    ("json", "also write the figures to this file", cxxopts::value<std::string>()->default_value(""))
    ("h,help", "print this help");
  // clang-format on
  return detr::guarded_main("detr_bench", [&]() -> int {
    auto a = options.parse(argc, argv);
    if (a.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    detr::BenchOptions o;
    o.config = a["config"].as<std::string>();
    o.batch_size = a["batch_size"].as<int64_t>();
    o.warmup = a["warmup"].as<int64_t>();
    o.steps = a["steps"].as<int64_t>();
    o.repeats = a["repeats"].as<int64_t>();
    o.mode = a["mode"].as<std::string>();
    o.width = a["width"].as<int64_t>();
    o.height = a["height"].as<int64_t>();
    o.num_workers = a["num_workers"].as<int64_t>();
    o.num_threads = a["num_threads"].as<int64_t>();
    o.device = a["device"].as<std::string>();
    o.amp = a["amp"].as<std::string>();
    o.conv_algorithm = a["conv_algorithm"].as<std::string>();
    auto result = detr::run_benchmark(o);
    if (!result.value("main_rank", true)) return 0;  // a job's other ranks: rank 0 reports
    std::cout << detr::format_benchmark(result) << result.dump() << std::endl;
    const auto path = a["json"].as<std::string>();
    if (!path.empty()) detr::util::write_file_atomically(path, result.dump(1) + "\n");
    return 0;
    });
}
