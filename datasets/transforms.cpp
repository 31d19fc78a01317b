#include "datasets/transforms.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <vector>

#include "util/box_ops.h"

namespace detr::datasets {

namespace F = torch::nn::functional;

namespace {

int64_t random_int(Rng& rng, int64_t lo, int64_t hi) {  // inclusive, as Python's random.randint
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

int64_t height(const Sample& s) { return s.image.size(1); }
int64_t width(const Sample& s) { return s.image.size(2); }

// Keeps the objects selected by keep [N] bool in every per-object field that is present.
void keep_objects(util::Target& t, const torch::Tensor& keep) {
  for (auto* field : {&t.boxes, &t.labels, &t.area, &t.iscrowd, &t.masks})
    if (field->defined()) *field = field->index({keep});
}

// masks [N, H, W] bool or uint8 (an object per row), checked against the image they belong to.
void check_masks(const Sample& s, const char* transform) {
  const auto& m = s.target.masks;
  TORCH_CHECK(m.dim() == 3 && m.size(1) == height(s) && m.size(2) == width(s), transform,
              ": target.masks must be [N, H, W] with the image's H x W ", s.image.sizes().slice(1), ", got ",
              m.sizes());
  TORCH_CHECK(m.scalar_type() == torch::kBool || m.scalar_type() == torch::kByte, transform,
              ": target.masks must be bool or uint8, got ", m.scalar_type());
}

// A chain of mask transforms as one selection of pixels from the original masks: output pixel
// (k, y, x) is mask objects[k]'s pixel (rows[y], cols[x]) != 0. Every transform upstream applies to
// masks only selects pixels (flip, slice, nearest resize), so a pipeline can read the original masks
// once and write only the final size: no intermediate size, however large, is ever allocated, and
// masks given as RLEs are never decoded at the image's size.
struct MaskSelection {
  torch::Tensor masks;    // [N, H, W] bool or uint8, as given; undefined when `rles` holds them
  std::vector<Rle> rles;  // [N] RLEs of H x W each
  torch::Tensor objects;  // [K] int64 into N
  torch::Tensor rows;     // [H'] int64 into H
  torch::Tensor cols;     // [W'] int64 into W
};

MaskSelection select_all(torch::Tensor masks, std::vector<Rle> rles, int64_t n, int64_t h, int64_t w) {
  return {std::move(masks), std::move(rles), torch::arange(n, torch::kLong), torch::arange(h, torch::kLong),
          torch::arange(w, torch::kLong)};
}

MaskSelection select_all(const torch::Tensor& masks) {
  return select_all(masks, {}, masks.size(0), masks.size(1), masks.size(2));
}

// The selection after upstream's nearest resize to oh x ow.
void resize_selection(MaskSelection& s, int64_t oh, int64_t ow) {
  s.rows = s.rows.index_select(0, util::nearest_source_index(s.rows.numel(), oh));
  s.cols = s.cols.index_select(0, util::nearest_source_index(s.cols.numel(), ow));
}

// An empty [K, H', W'] bool output, refused past kMaxSampleMaskBytes.
torch::Tensor mask_output(int64_t n, int64_t oh, int64_t ow, const torch::TensorOptions& options) {
  const double bytes = static_cast<double>(n) * static_cast<double>(oh) * static_cast<double>(ow);
  TORCH_CHECK(bytes <= static_cast<double>(kMaxSampleMaskBytes), "masks: ", n, " objects at ", oh, "x", ow,
              " would take ", static_cast<int64_t>(bytes / (1 << 20)), " MiB, more than the ",
              kMaxSampleMaskBytes >> 20, " MiB one sample may hold");
  return torch::zeros({n, oh, ow}, options.dtype(torch::kBool));
}

// One RLE's pixels (rows[y], cols[x]) into out [H', W'] (zeros): each selected source column is found
// by binary search among the run ends and walked down (rows are non-decreasing in every pipeline; a
// step back searches again). A column inside one background run is skipped whole, so the cost is the
// columns plus the pixels the object covers, and memory the RLE's runs.
void gather_rle(const Rle& rle, const int64_t* row, int64_t oh, const int64_t* col, int64_t ow, bool* out) {
  std::vector<uint64_t> ends(rle.counts.size());  // ends[i]: first pixel after run i (odd i: foreground)
  uint64_t sum = 0;
  for (size_t i = 0; i < ends.size(); ++i) ends[i] = sum += rle.counts[i];
  const auto h = static_cast<uint64_t>(rle.height);
  auto run_of = [&](uint64_t p) {
    return static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), p) - ends.begin());
  };
  const bool sorted = std::is_sorted(row, row + oh);
  for (int64_t x = 0; x < ow; ++x) {
    const uint64_t base = static_cast<uint64_t>(col[x]) * h;
    size_t i = run_of(base + static_cast<uint64_t>(row[0]));
    if (sorted && i % 2 == 0 && ends[i] > base + static_cast<uint64_t>(row[oh - 1])) continue;  // background
    for (int64_t y = 0; y < oh; ++y) {
      const uint64_t p = base + static_cast<uint64_t>(row[y]);
      if (y > 0 && row[y] < row[y - 1]) i = run_of(p);
      while (ends[i] <= p) ++i;
      if (i % 2 == 1) out[y * ow + x] = true;
    }
  }
}

// The selected pixels of RLE masks -> [K, H', W'] bool.
torch::Tensor gather_rle_pixels(const MaskSelection& s) {
  const auto objects = s.objects.contiguous(), rows = s.rows.contiguous(), cols = s.cols.contiguous();
  const int64_t n = objects.numel(), oh = rows.numel(), ow = cols.numel();
  auto out = mask_output(n, oh, ow, torch::TensorOptions());
  if (n == 0 || oh == 0 || ow == 0) return out;
  const int64_t *obj = objects.data_ptr<int64_t>(), *row = rows.data_ptr<int64_t>(), *col = cols.data_ptr<int64_t>();
  auto* dst = out.data_ptr<bool>();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) gather_rle(s.rles[obj[k]], row, oh, col, ow, dst + k * oh * ow);
  });
  return out;
}

// The selected pixels, != 0 -> [K, H', W'] bool. On the CPU one pass over the output, reading the
// masks in place (any strides) or walking their RLEs.
torch::Tensor gather_pixels(const MaskSelection& s) {
  if (!s.masks.defined()) return gather_rle_pixels(s);
  const auto& m = s.masks;
  if (!m.is_cpu()) {
    auto on = [&](const torch::Tensor& index) { return index.to(m.device()); };
    return m.index_select(0, on(s.objects)).index_select(1, on(s.rows)).index_select(2, on(s.cols)).ne(0);
  }
  const auto objects = s.objects.contiguous(), rows = s.rows.contiguous(), cols = s.cols.contiguous();
  const int64_t n = objects.numel(), oh = rows.numel(), ow = cols.numel();
  auto out = mask_output(n, oh, ow, m.options());
  const auto* in = static_cast<const uint8_t*>(m.data_ptr());  // bool and uint8: one byte each
  auto* dst = static_cast<bool*>(out.data_ptr());
  const int64_t *obj = objects.data_ptr<int64_t>(), *row = rows.data_ptr<int64_t>();
  std::vector<int64_t> col_offset(static_cast<size_t>(ow));
  for (int64_t x = 0; x < ow; ++x) col_offset[x] = cols.data_ptr<int64_t>()[x] * m.stride(2);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k)
      for (int64_t y = 0; y < oh; ++y) {
        const uint8_t* line = in + obj[k] * m.stride(0) + row[y] * m.stride(1);
        bool* o = dst + (k * oh + y) * ow;
        for (int64_t x = 0; x < ow; ++x) o[x] = line[col_offset[x]] != 0;
      }
  });
  return out;
}

// RLE masks checked against the sample: one per box (or per label), each the image's H x W.
void check_mask_rles(const Sample& s, const char* transform) {
  const auto& rles = *s.mask_rles;
  const auto& t = s.target;
  const auto& objects = t.boxes.defined() ? t.boxes : t.labels;
  TORCH_CHECK(!objects.defined() || objects.size(0) == static_cast<int64_t>(rles.size()), transform, ": ", rles.size(),
              " mask RLEs for ", objects.size(0), " objects");
  TORCH_CHECK(!t.masks.defined(), transform, ": a sample has dense masks or mask RLEs, not both");
  for (const auto& r : rles) {
    TORCH_CHECK(r.height == height(s) && r.width == width(s), transform, ": a mask RLE of ", r.height, "x", r.width,
                " on an image of ", height(s), "x", width(s));
    uint64_t sum = 0;
    for (uint32_t c : r.counts) sum += c;
    TORCH_CHECK(sum == static_cast<uint64_t>(r.height * r.width), transform, ": a mask RLE's runs sum to ", sum,
                " pixels, expected ", r.height, "x", r.width);
  }
}

// A sample's RLE masks decoded into target.masks [N, H, W] bool, for the single transforms.
void decode_mask_rles(Sample& s) {
  if (!s.mask_rles) return;
  check_mask_rles(s, "decode");
  const auto n = static_cast<int64_t>(s.mask_rles->size());
  auto selection = select_all(torch::Tensor(), std::move(*s.mask_rles), n, height(s), width(s));
  s.mask_rles.reset();
  s.target.masks = gather_pixels(selection);
}

// Upstream's interpolate(masks[:, None].float(), (oh, ow), mode="nearest")[:, 0] > 0.5 without the
// float copy: nearest copies whole source pixels, so reading the same rows and columns and testing
// != 0 gives the same bool masks, written once at the output size.
torch::Tensor resize_masks(const torch::Tensor& masks, int64_t oh, int64_t ow) {  // [N, oh, ow] bool
  if (oh == masks.size(1) && ow == masks.size(2)) return masks.scalar_type() == torch::kBool ? masks : masks.ne(0);
  auto selection = select_all(masks);
  resize_selection(selection, oh, ow);
  return gather_pixels(selection);
}

// Upstream's crop(image, target, (i, j, h, w)) in place. Returns keep [N] bool, the objects it kept:
// by their cropped boxes whenever there are boxes (a kept mask may be empty), else by their cropped
// masks; undefined when there is neither.
torch::Tensor crop_sample(Sample& s, int64_t i, int64_t j, int64_t h, int64_t w) {
  if (s.target.masks.defined()) check_masks(s, "crop");
  s.image = s.image.slice(1, i, i + h).slice(2, j, j + w).contiguous();
  auto& t = s.target;
  t.size = torch::tensor({h, w}, torch::kLong);
  // A view: keep_objects below copies only the objects kept.
  if (t.masks.defined()) t.masks = t.masks.slice(1, i, i + h).slice(2, j, j + w);
  torch::Tensor keep;
  if (t.boxes.defined()) {
    auto max_size = torch::tensor({static_cast<float>(w), static_cast<float>(h)});
    auto cropped = (t.boxes - torch::tensor({j, i, j, i})).reshape({-1, 2, 2});
    cropped = torch::min(cropped, max_size).clamp_min(0);
    t.area = (cropped.select(1, 1) - cropped.select(1, 0)).prod(1);
    t.boxes = cropped.reshape({-1, 4});
    keep = (cropped.select(1, 1) > cropped.select(1, 0)).all(1);
  } else if (t.masks.defined()) {
    keep = t.masks.flatten(1).any(1);
  }
  if (keep.defined()) keep_objects(t, keep);
  return keep;
}

// The masks of a sample with boxes, taken out of it to go through a pipeline as one selection (the
// other fields go through the public transforms). nullopt without masks, or without boxes (then
// the crop decides by the masks themselves, so they stay in the sample, decoded).
std::optional<MaskSelection> take_masks(Sample& s, const char* pipeline) {
  if (s.mask_rles && s.target.boxes.defined()) {
    check_mask_rles(s, pipeline);
    const auto n = static_cast<int64_t>(s.mask_rles->size());
    auto selection = select_all(torch::Tensor(), std::move(*s.mask_rles), n, height(s), width(s));
    s.mask_rles.reset();
    return selection;
  }
  decode_mask_rles(s);
  if (!s.target.masks.defined() || !s.target.boxes.defined()) return std::nullopt;
  check_masks(s, pipeline);
  auto selection = select_all(s.target.masks);
  s.target.masks = torch::Tensor();
  return selection;
}

// t [..., H, W] padded with zeros on the right and at the bottom.
torch::Tensor pad_bottom_right(const torch::Tensor& t, int64_t right, int64_t bottom) {
  auto sizes = t.sizes().vec();
  const auto h = sizes.end()[-2], w = sizes.end()[-1];
  sizes.end()[-2] += bottom;
  sizes.end()[-1] += right;
  auto out = torch::zeros(sizes, t.options());
  out.narrow(-2, 0, h).narrow(-1, 0, w).copy_(t);
  return out;
}

}  // namespace

TransformConfig TransformConfig::with_scales(std::vector<int64_t> scales, int64_t max_size, int64_t val_size) {
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

std::pair<int64_t, int64_t> get_size_with_aspect_ratio(int64_t w,
                                                       int64_t h,
                                                       int64_t size,
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
  decode_mask_rles(s);
  const auto w = width(s);
  s.image = s.image.flip(-1);
  auto& t = s.target;
  auto& b = t.boxes;
  if (b.defined() && b.numel())
    b = b.index_select(1, torch::tensor({2, 1, 0, 3})) * torch::tensor({-1, 1, -1, 1}) +
        torch::tensor({w, int64_t{0}, w, int64_t{0}});
  if (t.masks.defined()) {
    check_masks(s, "hflip");
    t.masks = t.masks.flip(-1);
  }
  return s;
}

Sample resize(Sample s, int64_t size, std::optional<int64_t> max_size) {
  const auto h = height(s), w = width(s);
  const auto [oh, ow] = get_size_with_aspect_ratio(w, h, size, max_size);
  decode_mask_rles(s);
  if (s.target.masks.defined()) check_masks(s, "resize");
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
  if (t.boxes.defined() && t.boxes.numel())
    t.boxes = t.boxes * torch::tensor({static_cast<float>(rw), static_cast<float>(rh), static_cast<float>(rw),
                                       static_cast<float>(rh)});
  if (t.area.defined()) t.area = t.area * (rw * rh);
  t.size = torch::tensor({oh, ow}, torch::kLong);
  if (t.masks.defined()) t.masks = resize_masks(t.masks, oh, ow);
  return s;
}

Sample crop(Sample s, int64_t i, int64_t j, int64_t h, int64_t w) {
  decode_mask_rles(s);
  crop_sample(s, i, j, h, w);
  return s;
}

Sample pad(Sample s, int64_t right, int64_t bottom) {
  TORCH_CHECK(right >= 0 && bottom >= 0, "pad: padding must be >= 0, got right ", right, ", bottom ", bottom);
  decode_mask_rles(s);
  if (s.target.masks.defined()) check_masks(s, "pad");
  s.image = pad_bottom_right(s.image, right, bottom);
  auto& t = s.target;
  t.size = torch::tensor({height(s), width(s)}, torch::kLong);
  if (t.masks.defined()) t.masks = pad_bottom_right(t.masks, right, bottom);
  return s;
}

Sample normalize(Sample s) {
  static const auto mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  static const auto std = torch::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  const auto h = height(s), w = width(s);
  decode_mask_rles(s);
  s.image = (s.image / 255).sub_(mean).div_(std);
  auto& b = s.target.boxes;
  if (b.defined())
    b = util::box_xyxy_to_cxcywh(b) /
        torch::tensor({static_cast<float>(w), static_cast<float>(h), static_cast<float>(w), static_cast<float>(h)});
  return s;
}

TrainAugmentation draw_train_augmentation(int64_t h, int64_t w, const TransformConfig& c, Rng& rng) {
  auto pick = [&](const std::vector<int64_t>& v) { return v[random_int(rng, 0, v.size() - 1)]; };
  TrainAugmentation a;
  a.flip = std::uniform_real_distribution<double>(0, 1)(rng) < 0.5;
  a.crop = !(std::uniform_real_distribution<double>(0, 1)(rng) < 0.5);
  if (a.crop) {
    a.crop_resize = pick(c.crop_resize);
    // RandomSizeCrop(crop_min, crop_max) on the resized image; a side shorter than crop_min is
    // taken whole (upstream's random.randint would raise).
    const auto [H, W] = get_size_with_aspect_ratio(w, h, a.crop_resize, std::nullopt);
    a.crop_w = random_int(rng, std::min(c.crop_min, W), std::min(W, c.crop_max));
    a.crop_h = random_int(rng, std::min(c.crop_min, H), std::min(H, c.crop_max));
    a.top = random_int(rng, 0, H - a.crop_h);
    a.left = random_int(rng, 0, W - a.crop_w);
  }
  a.size = pick(c.scales);
  return a;
}

namespace {
// The selection's pixels at the sample's (final) size into target.masks.
void finish_masks(std::optional<MaskSelection>& masks, Sample& s) {
  if (!masks) return;
  resize_selection(*masks, height(s), width(s));
  s.target.masks = gather_pixels(*masks);
}
}  // namespace

Sample apply_train_augmentation(Sample s, const TrainAugmentation& a, const TransformConfig& c) {
  auto masks = take_masks(s, "train_transforms");  // read once, at the end
  if (a.flip) {
    s = hflip(std::move(s));
    if (masks) masks->cols = masks->cols.flip(0);
  }
  if (a.crop) {
    s = resize(std::move(s), a.crop_resize, std::nullopt);
    if (masks) resize_selection(*masks, height(s), width(s));
    const auto keep = crop_sample(s, a.top, a.left, a.crop_h, a.crop_w);
    if (masks) {
      masks->objects = masks->objects.index({keep});
      masks->rows = masks->rows.slice(0, a.top, a.top + a.crop_h);
      masks->cols = masks->cols.slice(0, a.left, a.left + a.crop_w);
    }
  }
  s = resize(std::move(s), a.size, c.max_size);
  finish_masks(masks, s);
  return normalize(std::move(s));
}

Sample train_transforms(Sample s, const TransformConfig& c, Rng& rng) {
  const auto a = draw_train_augmentation(height(s), width(s), c, rng);
  return apply_train_augmentation(std::move(s), a, c);
}

Sample val_transforms(Sample s, const TransformConfig& c) {
  auto masks = take_masks(s, "val_transforms");  // read once, at the end
  s = resize(std::move(s), c.val_size, c.max_size);
  finish_masks(masks, s);
  return normalize(std::move(s));
}

}  // namespace detr::datasets
