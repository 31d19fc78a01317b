// detr_resize IN OUT --size S [--max_size M]: resizes an image exactly as the training transforms do
// (shorter side to S, longer capped at M, antialiased bilinear, whole levels) and writes it as PNG.
// Used by scripts/bench/resize_fidelity.py to measure the distance to upstream's PIL resize.
#include <cxxopts.hpp>
#include <torch/torch.h>

#include <iostream>

#include "datasets/image_io.h"
#include "datasets/transforms.h"
#include "src/cli/guarded_main.h"

int main(int argc, char** argv) {
  cxxopts::Options options("detr_resize", "Resizes an image as detr_train's transforms do.");
  options.add_options()("in", "input image", cxxopts::value<std::string>())(
      "out", "output PNG", cxxopts::value<std::string>())("size", "shorter side", cxxopts::value<int64_t>())(
      "max_size", "longest side cap (0 = none)", cxxopts::value<int64_t>()->default_value("0"))("h,help", "help");
  options.parse_positional({"in", "out"});
  return detr::guarded_main("detr_resize", [&]() -> int {
    auto a = options.parse(argc, argv);
    if (a.count("help") || !a.count("in") || !a.count("out") || !a.count("size")) {
      std::cout << options.help() << std::endl;
      return a.count("help") ? 0 : 2;
    }
    detr::datasets::Sample s;
    s.image = detr::datasets::to_chw_float(detr::datasets::load_image_rgb(a["in"].as<std::string>()));
    s.target.boxes = torch::zeros({0, 4});
    s.target.labels = torch::zeros({0}, torch::kLong);
    const auto m = a["max_size"].as<int64_t>();
    s = detr::datasets::resize(std::move(s), a["size"].as<int64_t>(), m > 0 ? std::optional<int64_t>(m) : std::nullopt);
    detr::datasets::save_image_rgb(s.image.permute({1, 2, 0}).to(torch::kUInt8).contiguous(), a["out"].as<std::string>());
    return 0;
    });
}
