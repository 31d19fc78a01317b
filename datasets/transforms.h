// Upstream's detection transforms (datasets/transforms.py, make_coco_transforms in datasets/coco.py)
// on (image, target) pairs. Images are [3, H, W] float holding uint8 values (0..255) until
// normalize(); each resize rounds back to whole levels as PIL does. Boxes are absolute xyxy until
// normalize() turns them into cxcywh relative to the unpadded image. Instance masks (target.masks,
// segmentation only) follow every geometric transform as upstream's do; without them nothing is spent.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <random>
#include <vector>

#include "datasets/coco_mask.h"
#include "util/misc.h"

namespace detr::datasets {

struct Sample {
  torch::Tensor image;  // [3, H, W] float
  util::Target target;  // boxes [N, 4] xyxy absolute (cxcywh normalized after normalize());
                        // masks (optional) [N, H, W] bool or uint8, the image's H x W
  // Masks not decoded yet (instead of target.masks): one RLE per object, each the image's H x W.
  // The pipelines (apply_train_augmentation, val_transforms) read only the pixels they output, so a
  // sample's masks cost kept objects x final H x final W bytes, never objects x the image's size;
  // a single transform decodes them first.
  std::optional<std::vector<Rle>> mask_rles;
};

// The most bytes one sample's decoded masks may take (kept objects x final H x final W): 2 GiB, about
// 2,000 objects at 800 x 1333. More is refused in one line rather than tried.
constexpr int64_t kMaxSampleMaskBytes = int64_t{2} << 30;

// The sizes the transforms use (upstream's defaults; --scales, --max_size, --val_size change them).
struct TransformConfig {
  std::vector<int64_t> scales{480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800};
  int64_t max_size = 1333;
  int64_t val_size = 800;
  // The crop branch: resize to one of these, crop a random region with sides in [crop_min, crop_max],
  // then resize to `scales`. Upstream: 400/500/600 and 384..600. These scale with max(scales) / 800
  // when --scales is given, so that small-image training keeps upstream's proportions.
  std::vector<int64_t> crop_resize{400, 500, 600};
  int64_t crop_min = 384;
  int64_t crop_max = 600;

  // A config for the given scales with the crop branch scaled by max(scales) / 800.
  static TransformConfig with_scales(std::vector<int64_t> scales, int64_t max_size, int64_t val_size);
};

using Rng = std::mt19937_64;

// (h, w) after resizing the shorter side to `size`, capped so the longer side stays <= max_size
// (upstream get_size_with_aspect_ratio: Python round() half-to-even for the cap, int() truncation).
std::pair<int64_t, int64_t> get_size_with_aspect_ratio(int64_t w,
                                                       int64_t h,
                                                       int64_t size,
                                                       std::optional<int64_t> max_size);

// Masks: hflip flips them; resize picks the pixels torch's legacy "nearest" picks (upstream:
// interpolate(masks[:, None].float(), size, mode="nearest")[:, 0] > 0.5) and returns bool, with no
// float copy; crop slices them and keeps the objects whose cropped box is non-empty, so a kept mask
// may be empty (masks.flatten(1).any(1) decides only when there are no boxes); pad pads them with
// false. crop, hflip and pad keep the masks' dtype.
Sample hflip(Sample s);
Sample resize(Sample s, int64_t size, std::optional<int64_t> max_size);
Sample crop(Sample s, int64_t i, int64_t j, int64_t h, int64_t w);  // region top, left, height, width
// Zeros on the right and at the bottom (upstream pad(image, target, (right, bottom))); boxes unchanged.
Sample pad(Sample s, int64_t right, int64_t bottom);
// ToTensor + Normalize(ImageNet mean/std) and boxes -> normalized cxcywh.
Sample normalize(Sample s);

// The training pipeline: RandomHorizontalFlip(0.5), RandomSelect(RandomResize(scales, max_size),
// [RandomResize(crop_resize), RandomSizeCrop(crop_min, crop_max), RandomResize(scales, max_size)]),
// Normalize. = apply_train_augmentation(s, draw_train_augmentation(H, W, config, rng), config).
Sample train_transforms(Sample s, const TransformConfig& config, Rng& rng);

// The random choices of one train_transforms call, for an image of h x w.
struct TrainAugmentation {
  bool flip = false;          // RandomHorizontalFlip
  bool crop = false;          // RandomSelect: false = resize only, true = the crop branch
  int64_t crop_resize = 0;    // crop branch: first resize (shorter side, no max_size)
  int64_t top = 0, left = 0;  // crop branch: RandomSizeCrop's region on the resized image
  int64_t crop_h = 0, crop_w = 0;
  int64_t size = 0;  // final resize (shorter side, capped by max_size)
};
TrainAugmentation draw_train_augmentation(int64_t h, int64_t w, const TransformConfig& config, Rng& rng);
// hflip / resize / crop / resize / normalize as chosen. Masks with boxes (dense or RLE) are read once,
// at the final size (every step only selects their pixels), so neither the image's full size nor the
// crop branch's large intermediate resize ever exists for them; the result equals the same public
// transforms applied one by one.
Sample apply_train_augmentation(Sample s, const TrainAugmentation& augmentation, const TransformConfig& config);
// Validation: RandomResize([val_size], max_size), Normalize; masks read once, as above.
Sample val_transforms(Sample s, const TransformConfig& config);

// Image [H, W, 3] uint8 -> [3, H, W] float of the same values.
torch::Tensor to_chw_float(const torch::Tensor& hwc_uint8);

}  // namespace detr::datasets
