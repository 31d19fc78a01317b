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
// decoded, is truncated, or its header declares more than max_pixels (checked before decoding; formats
// whose header is not read here are bounded by OpenCV's own limit of 2^30 pixels). Peak memory: the
// file's bytes plus twice the decoded image.
torch::Tensor load_image_rgb(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxImagePixels);

// The same for an encoded image in memory (a request's bytes); `name` stands for the file in errors.
torch::Tensor decode_image_rgb(const std::string& bytes, const std::string& name,
                               int64_t max_pixels = kDefaultMaxImagePixels);

// Why the file is not a usable image ("" when it is): unreadable, undecodable, truncated or too large.
// Decodes the whole image.
std::string image_problem(const std::filesystem::path& path, int64_t max_pixels = kDefaultMaxImagePixels);

// The size the file's header declares (reads at most its first 1 MiB); nullopt when the format's
// header is not read here. Throws naming the file when it cannot be opened, or when it starts like a
// format read here but no size can be read from it.
std::optional<ImageHeader> read_image_file_header(const std::filesystem::path& path);

// "<file>: PNG declares 16000x16000 = 256000000 pixels, above the limit of ..." or "" when within it.
std::string too_many_pixels(const std::filesystem::path& path, const ImageHeader& header, int64_t max_pixels);

// Writes a [H, W, 3] uint8 RGB tensor (JPEG or PNG by extension); temp file + rename.
void save_image_rgb(const torch::Tensor& image, const std::filesystem::path& path);

}  // namespace detr::datasets
