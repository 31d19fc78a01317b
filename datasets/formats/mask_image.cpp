#include "datasets/formats/mask_image.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

#include "datasets/coco_mask.h"
#include "datasets/image_header.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

MaskImage read_mask_image(const fs::path& path) {
  std::error_code ec;
  const uintmax_t bytes = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read it");
  if (bytes > kMaxMaskFileBytes)
    throw std::runtime_error(std::to_string(bytes) + " bytes, more than " + std::to_string(kMaxMaskFileBytes >> 20) +
                             " MiB");
  std::vector<uint8_t> data(static_cast<size_t>(bytes));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(bytes)))
    throw std::runtime_error("cannot read it");
  const auto header = read_image_header(data.data(), data.size());
  // PNG's IHDR: bit depth at byte 24 (checked before decoding: a 16-bit image decodes to twice the bytes).
  if (!header || header->format != "PNG" || data.size() < 26)
    throw std::runtime_error("not a PNG whose size can be read");
  if (data[24] > 8) throw std::runtime_error("a " + std::to_string(data[24]) + "-bit PNG; masks are 8-bit or less");
  if (header->width * header->height > kMaxMaskImagePixels)
    throw std::runtime_error(std::to_string(header->width) + "x" + std::to_string(header->height) +
                             " is more pixels than a mask may hold (" + std::to_string(kMaxMaskImagePixels) + ")");
  cv::Mat img;
  try {
    img = cv::imdecode(data, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw std::runtime_error("cannot be decoded: " + e.err);
  }
  if (img.empty() || img.depth() != CV_8U || img.rows != header->height || img.cols != header->width)
    throw std::runtime_error("cannot be decoded as an 8-bit image of its header's size");
  MaskImage out{img.rows, img.cols, img.channels(), {}};
  out.pixels.resize(static_cast<size_t>(img.total() * img.elemSize()));
  cv::Mat dst(img.rows, img.cols, img.type(), out.pixels.data());
  img.copyTo(dst);
  return out;
}

std::array<uint8_t, 3> voc_color(int index) {
  int r = 0, g = 0, b = 0;
  for (int j = 0, c = index; j < 8; ++j, c >>= 3) {
    r |= ((c >> 0) & 1) << (7 - j);
    g |= ((c >> 1) & 1) << (7 - j);
    b |= ((c >> 2) & 1) << (7 - j);
  }
  return {static_cast<uint8_t>(b), static_cast<uint8_t>(g), static_cast<uint8_t>(r)};
}

int voc_color_index(uint8_t b, uint8_t g, uint8_t r) {
  // The map is a bijection of the index's bits onto the colours' top bits: invert it bit by bit.
  int index = 0;
  for (int j = 0; j < 8; ++j) {
    const int bit = 7 - j;
    index |= (((r >> bit) & 1) << (3 * j)) | (((g >> bit) & 1) << (3 * j + 1)) | (((b >> bit) & 1) << (3 * j + 2));
  }
  if (index > 255) return -1;
  const auto c = voc_color(index);
  return c[0] == b && c[1] == g && c[2] == r ? index : -1;
}

}  // namespace detr::datasets::formats
