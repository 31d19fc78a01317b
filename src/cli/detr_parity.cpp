// detr_parity DIR...: compares this build against golden data computed by upstream DETR.
// Exit codes: 0 all within tolerance, 1 a deviation beyond tolerance or an error, 2 usage.
#include <cxxopts.hpp>

#include "src/run_context.h"
#include <torch/torch.h>

#include <iostream>

#include "models/winograd_conv.h"
#include "src/tools/parity.h"
#include "src/cli/guarded_main.h"

int main(int argc, char** argv) {
  cxxopts::Options options("detr_parity",
                           "Checks the model, matcher, losses, gradients and post-processing against "
                           "a fixture directory made by upstream DETR (config.json, model.pth, "
                           "expected.pth).");
  options.add_options()("dirs", "fixture directories", cxxopts::value<std::vector<std::string>>())(
      "num_threads", "intra-op threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))(
      "float64", "compute in float64 (a conditioning check: how far float32 itself is from exact)")(
      "train", "the directories are train_steps fixtures: replay upstream's optimizer steps")(
      "no_mkldnn", "use ATen's own CPU convolutions instead of oneDNN's")(
      "conv_algorithm", "winograd | direct: the backbone's 3x3 convolutions in the folded (fast) path", cxxopts::value<std::string>()->default_value("winograd"))("h,help", "print this help");
  options.parse_positional({"dirs"});
  options.positional_help("DIR [DIR...]");
  return detr::guarded_main("detr_parity", [&]() -> int {
    auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    if (!args.count("dirs")) throw cxxopts::exceptions::exception("no fixture directory given");
    detr::RunOptions ro;
    ro.device = torch::Device(torch::kCPU);
    ro.num_threads = std::max(0, args["num_threads"].as<int>());
    try {
      ro.conv_algorithm = detr::models::parse_conv_algorithm(args["conv_algorithm"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw detr::UsageError(e.what());
    }
    const detr::RunContext ctx(ro, detr::Launch::local());
    if (args.count("no_mkldnn")) at::globalContext().setUserEnabledMkldnn(false);
    bool ok = true;
    for (const auto& dir : args["dirs"].as<std::vector<std::string>>()) {
      auto report = args.count("train") ? detr::run_train_parity(dir, ctx.conv_kernels())
                                        : detr::run_forward_parity(dir, args.count("float64") ? torch::kDouble : torch::kFloat,
                                                                   ctx.conv_kernels());
      std::cout << report.format() << std::flush;
      ok = ok && report.ok();
    }
    return ok ? 0 : 1;
    });
}
