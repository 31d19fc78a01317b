// detr_resize IN OUT --size S [--max_size M]: resizes an image exactly as the training transforms do
// (shorter side to S, longer capped at M, antialiased bilinear, whole levels) and writes it as PNG.
// Used by scripts/bench/resize_fidelity.py to measure the distance to upstream's PIL resize.
#include <torch/torch.h>

#include <iostream>
#include <string>

#include "datasets/image_io.h"
#include "datasets/transforms.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"

namespace {

struct ResizeCommand {
  std::string in, out;
  int64_t size = 0;      // required
  int64_t max_size = 0;  // 0: none
};

detr::FlagTable<ResizeCommand> flag_table() {
  using C = ResizeCommand;
  detr::FlagTable<C> t("detr_resize", "Resizes an image as detr_train's transforms do.", "IN OUT");
  t.add_positional("in", "input image", &C::in);
  t.add_positional("out", "output PNG", &C::out);
  t.add("", "size", "shorter side (required)", &C::size);
  t.add("", "max_size", "longest side cap (0 = none)", &C::max_size);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_resize", [&]() -> int {
    ResizeCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    if (c.in.empty() || c.out.empty() || !line.given.count("size"))
      throw detr::UsageError("IN, OUT and --size are required");
    detr::datasets::Sample s;
    s.image = detr::datasets::to_chw_float(detr::datasets::load_image_rgb(c.in));
    s.target.boxes = torch::zeros({0, 4});
    s.target.labels = torch::zeros({0}, torch::kLong);
    const auto max_size = c.max_size > 0 ? std::optional<int64_t>(c.max_size) : std::nullopt;
    s = detr::datasets::resize(std::move(s), c.size, max_size);
    detr::datasets::save_image_rgb(s.image.permute({1, 2, 0}).to(torch::kUInt8).contiguous(), c.out);
    return 0;
  });
}
