// detr_parity DIR...: compares this build against golden data computed by upstream DETR.
// Exit codes: 0 all within tolerance, 1 a deviation beyond tolerance or an error, 2 usage.
#include <torch/torch.h>

#include <iostream>
#include <string>
#include <vector>

#include "models/winograd_conv.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"
#include "src/run_context.h"
#include "src/tools/parity.h"

namespace {

struct ParityCommand {
  std::vector<std::string> dirs;
  int64_t num_threads = 0;
  bool float64 = false, train = false, no_mkldnn = false;
  detr::models::ConvAlgorithm conv_algorithm = detr::models::ConvAlgorithm::kWinograd;
};

detr::FlagTable<ParityCommand> flag_table() {
  using C = ParityCommand;
  detr::FlagTable<C> t("detr_parity",
                       "Checks the model, matcher, losses, gradients and post-processing against a fixture directory "
                       "made by upstream DETR (config.json, model.pth, expected.pth).",
                       "DIR [DIR...]");
  const char* g = "";
  t.add_positional("dirs", "fixture directories", &C::dirs);
  t.add(g, detr::run_flags::kNumThreads, &C::num_threads);
  t.add_switch(g, "float64", "compute in float64 (a conditioning check: how far float32 itself is from exact)",
               [](C& c) -> bool& { return c.float64; });
  t.add_switch(g, "train", "the directories are train_steps fixtures: replay upstream's optimizer steps",
               [](C& c) -> bool& { return c.train; });
  t.add_switch(g, "no_mkldnn", "use ATen's own CPU convolutions instead of oneDNN's",
               [](C& c) -> bool& { return c.no_mkldnn; });
  t.add(g, detr::run_flags::kConvAlgorithm, &C::conv_algorithm);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_parity", [&]() -> int {
    ParityCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    if (c.dirs.empty()) throw detr::UsageError("no fixture directory given");
    detr::RunOptions ro;
    ro.device = torch::Device(torch::kCPU);
    ro.num_threads = std::max<int64_t>(0, c.num_threads);
    ro.conv_algorithm = c.conv_algorithm;
    const detr::RunContext ctx(ro, detr::Launch::local());
    if (c.no_mkldnn) at::globalContext().setUserEnabledMkldnn(false);
    bool ok = true;
    for (const auto& dir : c.dirs) {
      auto report = c.train
                        ? detr::run_train_parity(dir, ctx.conv_kernels())
                        : detr::run_forward_parity(dir, c.float64 ? torch::kDouble : torch::kFloat, ctx.conv_kernels());
      std::cout << report.format() << std::flush;
      ok = ok && report.ok();
    }
    return ok ? 0 : 1;
  });
}
