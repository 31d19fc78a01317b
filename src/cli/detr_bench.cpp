// detr_bench: training / evaluation throughput at a named configuration on generated data.
// Prints a table on stdout and, with --json FILE, writes the figures as JSON. Launched with RANK /
// WORLD_SIZE (torchrun --no-python detr_bench ...), it measures data-parallel training.
#include <torch/torch.h>

#include <iostream>

#include "src/tools/benchmark.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"
#include "util/atomic_file.h"

namespace {

struct BenchCommand {
  detr::BenchOptions bench;
  std::string json;  // also write the figures here
};

detr::FlagTable<BenchCommand> flag_table() {
  using B = detr::BenchOptions;
  using C = BenchCommand;
  detr::FlagTable<C> t("detr_bench", "DETR training/evaluation throughput on a generated CVAT-style export.");
  const char* g = "";
  t.add(g, "config",
        "default (R50, 256, 6+6, 100 queries) | small (R18, 128, 2+2, 20 queries) | small_r50 (R50, 128, 2+2, 20 "
        "queries)",
        &C::bench, &B::config);
  t.add(g, "batch_size", "images per step", &C::bench, &B::batch_size);
  t.add(g, "warmup", "unmeasured steps first", &C::bench, &B::warmup);
  t.add(g, "steps", "measured steps per repetition", &C::bench, &B::steps);
  t.add(g, "repeats", "repetitions (medians reported)", &C::bench, &B::repeats);
  t.add(g, "mode", "train | eval | both | data", &C::bench, &B::mode);
  t.add_switch(g, "masks", "the segmentation model (DETRsegm) on mask targets",
               [](C& c) -> bool& { return c.bench.masks; });
  t.add(g, "width", "generated image width", &C::bench, &B::width);
  t.add(g, "height", "generated image height", &C::bench, &B::height);
  t.add(g, "num_workers", "loader threads", &C::bench, &B::num_workers);
  t.add(g, detr::run_flags::kNumThreads, &C::bench, &B::num_threads);
  t.add(g, detr::run_flags::kDevice, &C::bench, &B::device);
  t.add(g, detr::run_flags::kAmp, &C::bench, &B::amp);
  t.add(g, detr::run_flags::kConvAlgorithm, &C::bench, &B::conv_algorithm);
  t.add(g, "profile",
        "> 0: run the measured steps under LibTorch's profiler and print this many ops by self time (the "
        "profiler's own cost is in the step times then)",
        &C::bench, &B::profile);
  t.add(g, "json", "also write the figures to this file", &C::json);
  return t;
}

void validate(const detr::BenchOptions& o) {
  if (o.batch_size < 1 || o.steps < 1 || o.repeats < 1 || o.warmup < 0 || o.width < 32 || o.height < 32 ||
      o.num_workers < 0 || o.num_threads < 0 || o.profile < 0)
    throw detr::UsageError(
        "--batch_size, --steps and --repeats must be positive, --warmup, --num_workers, "
        "--num_threads and --profile >= 0, images at least 32x32");
  if (o.mode != "train" && o.mode != "eval" && o.mode != "both" && o.mode != "data")
    throw detr::UsageError("--mode must be train, eval, both or data, got '" + o.mode + "'");
  if (o.config != "default" && o.config != "small" && o.config != "small_r50")
    throw detr::UsageError("--config must be default, small or small_r50, got '" + o.config + "'");
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_bench", [&]() -> int {
    BenchCommand cmd;
    const auto line = flag_table().parse(argc, argv, cmd);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    validate(cmd.bench);
    auto result = detr::run_benchmark(cmd.bench, detr::Launch::from_environment());
    if (!result.value("main_rank", true)) return 0;  // a job's other ranks: rank 0 reports
    std::cout << detr::format_benchmark(result) << result.dump() << std::endl;
    if (!cmd.json.empty()) detr::util::write_file_atomically(cmd.json, result.dump(1) + "\n");
    return 0;
  });
}
