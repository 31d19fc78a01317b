#include "datasets/transforms.h"

#include <cfenv>
#include <cmath>

#include "src/util/box_ops.h"

namespace detr::datasets {

namespace F = torch::nn::functional;

namespace {

int64_t random_int(Rng& rng, int64_t lo, int64_t hi) {  // inclusive, as Python's random.randint
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

int64_t height(const Sample& s) { return s.image.size(1); }
int64_t width(const Sample& s) { return s.image.size(2); }

// Keeps the objects selected by a [N] bool mask in every per-object field.
void keep_objects(util::Target& t, const torch::Tensor& keep) {
  t.boxes = t.boxes.index({keep});
  t.labels = t.labels.index({keep});
  if (t.area.defined()) t.area = t.area.index({keep});
  if (t.iscrowd.defined()) t.iscrowd = t.iscrowd.index({keep});
}

}  // namespace

TransformConfig TransformConfig::with_scales(std::vector<int64_t> scales, int64_t max_size,
                                             int64_t val_size) {
  TORCH_CHECK(!scales.empty(), "--scales: at least one size is needed");
  for (auto s : scales) TORCH_CHECK(s > 0, "--scales: sizes must be positive, got ", s);
  TORCH_CHECK(max_size > 0 && val_size > 0, "--max_size and --val_size must be positive");
  TransformConfig c;
  const double f = static_cast<double>(*std::max_element(scales.begin(), scales.end())) / 800.0;
  c.scales = std::move(scales);
  c.max_size = max_size;
  c.val_size = val_size;
  if (f != 1.0) {
    for (auto& v : c.crop_resize) v = std::max<int64_t>(1, std::llround(v * f));
    c.crop_min = std::max<int64_t>(1, std::llround(c.crop_min * f));
    c.crop_max = std::max<int64_t>(c.crop_min, std::llround(c.crop_max * f));
  }
  return c;
}

std::pair<int64_t, int64_t> get_size_with_aspect_ratio(int64_t w, int64_t h, int64_t size,
                                                       std::optional<int64_t> max_size) {
  if (max_size) {
    const double mn = static_cast<double>(std::min(w, h)), mx = static_cast<double>(std::max(w, h));
    if (mx / mn * static_cast<double>(size) > static_cast<double>(*max_size)) {
      std::fesetround(FE_TONEAREST);  // Python round(): half to even
      size = static_cast<int64_t>(std::nearbyint(static_cast<double>(*max_size) * mn / mx));
    }
  }
  if ((w <= h && w == size) || (h <= w && h == size)) return {h, w};
  if (w < h) return {static_cast<int64_t>(static_cast<double>(size * h) / static_cast<double>(w)), size};
  return {size, static_cast<int64_t>(static_cast<double>(size * w) / static_cast<double>(h))};
}

torch::Tensor to_chw_float(const torch::Tensor& hwc_uint8) {
  return hwc_uint8.permute({2, 0, 1}).to(torch::kFloat).contiguous();
}

Sample hflip(Sample s) {
  const auto w = width(s);
  s.image = s.image.flip(-1);
  auto& b = s.target.boxes;
  if (b.numel())
    b = b.index_select(1, torch::tensor({2, 1, 0, 3})) * torch::tensor({-1, 1, -1, 1}) +
        torch::tensor({w, int64_t{0}, w, int64_t{0}});
  return s;
}

Sample resize(Sample s, int64_t size, std::optional<int64_t> max_size) {
  const auto h = height(s), w = width(s);
  const auto [oh, ow] = get_size_with_aspect_ratio(w, h, size, max_size);
  if (oh != h || ow != w) {
    // PIL's antialiased bilinear, then back to whole uint8 levels.
    s.image = F::interpolate(s.image.unsqueeze(0), F::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{oh, ow})
                                                       .mode(torch::kBilinear)
                                                       .align_corners(false)
                                                       .antialias(true))
                  .squeeze(0)
                  .round_()
                  .clamp_(0, 255);
  }
  // Python floats: the box ratios become a float32 tensor, the area factor stays a double.
  const double rw = static_cast<double>(ow) / static_cast<double>(w);
  const double rh = static_cast<double>(oh) / static_cast<double>(h);
  auto& t = s.target;
  if (t.boxes.numel())
    t.boxes = t.boxes * torch::tensor({static_cast<float>(rw), static_cast<float>(rh),
                                       static_cast<float>(rw), static_cast<float>(rh)});
  if (t.area.defined()) t.area = t.area * (rw * rh);
  t.size = torch::tensor({oh, ow}, torch::kLong);
  return s;
}

Sample crop(Sample s, int64_t i, int64_t j, int64_t h, int64_t w) {
  s.image = s.image.slice(1, i, i + h).slice(2, j, j + w).contiguous();
  auto& t = s.target;
  t.size = torch::tensor({h, w}, torch::kLong);
  auto max_size = torch::tensor({static_cast<float>(w), static_cast<float>(h)});
  auto cropped = (t.boxes - torch::tensor({j, i, j, i})).reshape({-1, 2, 2});
  cropped = torch::min(cropped, max_size).clamp_min(0);
  t.area = (cropped.select(1, 1) - cropped.select(1, 0)).prod(1);
  t.boxes = cropped.reshape({-1, 4});
  keep_objects(t, (cropped.select(1, 1) > cropped.select(1, 0)).all(1));
  return s;
}

Sample normalize(Sample s) {
  static const auto mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  static const auto std = torch::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  const auto h = height(s), w = width(s);
  s.image = (s.image / 255).sub_(mean).div_(std);
  auto& b = s.target.boxes;
  b = util::box_xyxy_to_cxcywh(b) / torch::tensor({static_cast<float>(w), static_cast<float>(h),
                                                   static_cast<float>(w), static_cast<float>(h)});
  return s;
}

Sample train_transforms(Sample s, const TransformConfig& c, Rng& rng) {
  auto pick = [&](const std::vector<int64_t>& v) { return v[random_int(rng, 0, v.size() - 1)]; };
  if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.5) s = hflip(std::move(s));
  if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.5) {
    s = resize(std::move(s), pick(c.scales), c.max_size);
  } else {
    s = resize(std::move(s), pick(c.crop_resize), std::nullopt);
    // RandomSizeCrop(crop_min, crop_max); a side shorter than crop_min is taken whole
    // (upstream's random.randint would raise).
    const auto H = height(s), W = width(s);
    const int64_t w = random_int(rng, std::min(c.crop_min, W), std::min(W, c.crop_max));
    const int64_t h = random_int(rng, std::min(c.crop_min, H), std::min(H, c.crop_max));
    const int64_t i = random_int(rng, 0, H - h), j = random_int(rng, 0, W - w);
    s = crop(std::move(s), i, j, h, w);
    s = resize(std::move(s), pick(c.scales), c.max_size);
  }
  return normalize(std::move(s));
}

Sample val_transforms(Sample s, const TransformConfig& c) {
  return normalize(resize(std::move(s), c.val_size, c.max_size));
}

}  // namespace detr::datasets
