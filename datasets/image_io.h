// Image decoding (OpenCV stays private to the library): RGB uint8, EXIF orientation ignored as
// PIL's Image.open(...).convert('RGB') does; grayscale and alpha images become 3-channel RGB.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>

#include "datasets/image_header.h"

namespace detr::datasets {

// [H, W, 3] uint8 RGB. Throws std::runtime_error naming the file when it cannot be read, cannot be
// decoded, is truncated, is in a format whose header is not read here (read_image_file_header), or
// its header declares more than max_pixels (checked before decoding). Peak memory: the file's bytes
// plus twice the decoded image.
torch::Tensor load_image_rgb(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxImagePixels);

// The same for an encoded image in memory (a request's bytes); `name` stands for the file in errors.
torch::Tensor decode_image_rgb(const std::string& bytes,
                               const std::string& name,
                               int64_t max_pixels = kDefaultMaxImagePixels);

// Why the file is not a usable image ("" when it is): unreadable, undecodable, truncated or too large.
// Decodes the whole image.
std::string image_problem(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxImagePixels);

// The size the file's header declares (reads at most its first 1 MiB). Throws naming the file when it
// cannot be opened, when it starts like a format read here but no size can be read from it, and for
// every other format (JPEG 2000, BigTIFF, Radiance HDR, PAM, PFM, ...: refused by content, whatever the
// file's name, because their size is not checked before decoding).
ImageHeader read_image_file_header(const std::filesystem::path& path);

// "<file>: PNG declares 16000x16000 = 256000000 pixels, above the limit of ..." or "" when within it.
std::string too_many_pixels(const std::filesystem::path& path, const ImageHeader& header, int64_t max_pixels);

// Writes a [H, W, 3] uint8 RGB tensor (JPEG or PNG by extension); temp file + rename.
void save_image_rgb(const torch::Tensor& image, const std::filesystem::path& path);

}  // namespace detr::datasets
