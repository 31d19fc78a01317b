#include "util/misc.h"

namespace detr::util {

namespace {
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device, bool non_blocking) {
  return t.defined() ? t.to(device, non_blocking) : t;
}
}  // namespace

NestedTensor NestedTensor::to(const torch::Device& device, bool non_blocking) const {
  return {to_device(tensors, device, non_blocking), to_device(mask, device, non_blocking)};
}

Target Target::to(const torch::Device& device, bool non_blocking) const {
  auto m = [&](const torch::Tensor& t) { return to_device(t, device, non_blocking); };
  return {m(boxes), m(labels), m(image_id), m(orig_size), m(size), m(area), m(iscrowd), m(masks)};
}

NestedTensor nested_tensor_from_tensor_list(const std::vector<torch::Tensor>& images) {
  TORCH_CHECK(!images.empty(), "nested_tensor_from_tensor_list: empty image list");
  int64_t c = 0, h = 0, w = 0;
  for (const auto& img : images) {
    TORCH_CHECK(img.dim() == 3, "nested_tensor_from_tensor_list: images must be [C, H, W], got ", img.sizes());
    c = std::max(c, img.size(0));
    h = std::max(h, img.size(1));
    w = std::max(w, img.size(2));
  }
  const auto b = static_cast<int64_t>(images.size());
  auto tensors = torch::zeros({b, c, h, w}, images[0].options());
  auto mask = torch::ones({b, h, w}, images[0].options().dtype(torch::kBool));
  for (int64_t i = 0; i < b; ++i) {
    const auto& img = images[i];
    tensors[i].slice(0, 0, img.size(0)).slice(1, 0, img.size(1)).slice(2, 0, img.size(2)).copy_(img);
    mask[i].slice(0, 0, img.size(1)).slice(1, 0, img.size(2)).fill_(false);
  }
  return {tensors, mask};
}

torch::Tensor accuracy(const torch::Tensor& output, const torch::Tensor& target) {
  if (target.numel() == 0) return torch::zeros({}, output.options());
  auto pred = std::get<1>(output.topk(1, 1, true, true)).t();  // [1, N]
  auto correct = pred.eq(target.view({1, -1}).expand_as(pred));
  return correct.view(-1).to(torch::kFloat).sum(0).mul_(100.0 / target.size(0));
}

torch::Tensor nearest_source_index(int64_t in, int64_t out) {
  namespace F = torch::nn::functional;
  const auto positions = torch::arange(in, torch::kFloat).view({1, 1, in, 1});
  const auto picked =
      F::interpolate(positions, F::InterpolateFuncOptions().size(std::vector<int64_t>{out, 1}).mode(torch::kNearest));
  return picked.view({out}).to(torch::kLong);
}

}  // namespace detr::util
