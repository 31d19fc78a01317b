// Mask images of the exports that draw masks as pictures (LabelMe's Masks/*.png, Pascal VOC's
// SegmentationObject/*.png), read with the header checked before anything is decoded.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "datasets/image_header.h"

namespace detr::datasets::formats {

constexpr uint64_t kMaxMaskFileBytes = uint64_t{256} << 20;
constexpr int64_t kMaxMaskImagePixels = kDefaultMaxImagePixels;  // the images' default bound

// An 8-bit image's pixels: height x width x channels bytes, row-major, channels interleaved in the
// decoder's order (B, G, R[, A] for colour; palette images come as colour).
struct MaskImage {
  int64_t height = 0, width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// Throws std::runtime_error "<what>" (the caller adds the file and record) for a file over
// kMaxMaskFileBytes, one that is not a PNG of at most 8 bits a channel, a header that declares more
// than kMaxMaskImagePixels (checked before decoding), or bytes that do not decode to that image.
MaskImage read_mask_image(const std::filesystem::path& path);

// The Pascal VOC colour map's index of a colour (B, G, R as decoded); -1 for a colour not in it.
int voc_color_index(uint8_t b, uint8_t g, uint8_t r);

// The VOC colour map's colour of index i (0..255) as B, G, R.
std::array<uint8_t, 3> voc_color(int index);

}  // namespace detr::datasets::formats
