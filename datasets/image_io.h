// Image decoding (OpenCV stays private to the library): RGB uint8, EXIF orientation ignored as
// PIL's Image.open(...).convert('RGB') does; grayscale and alpha images become 3-channel RGB.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace detr::datasets {

// [H, W, 3] uint8 RGB. Throws std::runtime_error naming the file when it cannot be read, cannot be
// decoded or is truncated.
torch::Tensor load_image_rgb(const std::filesystem::path& path);

// Why the file is not a usable image ("" when it is): unreadable, undecodable or truncated.
// Decodes the whole image.
std::string image_problem(const std::filesystem::path& path);

// Writes a [H, W, 3] uint8 RGB tensor (JPEG or PNG by extension); temp file + rename.
void save_image_rgb(const torch::Tensor& image, const std::filesystem::path& path);

}  // namespace detr::datasets
