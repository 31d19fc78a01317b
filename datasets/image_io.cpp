#include "datasets/image_io.h"

#include "util/atomic_file.h"

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace detr::datasets {

namespace {

// A device, FIFO or folder never reaches a reader: /dev/zero would be read until memory runs out.
void require_regular_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw std::runtime_error(path.string() + ": cannot open image file");
  if (!std::filesystem::is_regular_file(status))
    throw std::runtime_error(path.string() + ": not a regular file (a device, pipe or folder)");
}

std::vector<uchar> read_bytes(const std::filesystem::path& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open image file");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A JPEG cut short (PIL: "image file is truncated"): no end-of-image marker after the main image's
// scan. Walks the marker segments to the first start-of-scan (an EXIF thumbnail inside APP1 is skipped
// with its segment), then looks for FFD9 after it; in entropy-coded data FF is always followed by 00 or
// a restart marker, so the first FFD9 there is the image's end, and bytes after it (some phones append
// videos or vendor data) do not matter.
bool jpeg_truncated(const std::vector<uchar>& b) {
  if (b.size() < 4 || b[0] != 0xFF || b[1] != 0xD8) return false;  // not a JPEG
  size_t i = 2;
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) return true;  // lost sync before the scan
    const uchar marker = b[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    const size_t length = (static_cast<size_t>(b[i + 2]) << 8) | b[i + 3];
    if (marker == 0xDA) {  // start of scan: search its data for the end of image
      for (size_t k = i + 2 + length; k + 1 < b.size(); ++k)
        if (b[k] == 0xFF && b[k + 1] == 0xD9) return false;
      return true;
    }
    i += 2 + length;
  }
  return true;
}

// The size the bytes' header declares; throws naming the file for a header that cannot be read and for
// every format whose header is not read here (decided by content, not by the file's name).
ImageHeader checked_header(const uint8_t* data, size_t size, const std::filesystem::path& path) {
  if (auto h = read_image_header(data, size)) return *h;
  if (has_image_magic(data, size))
    throw std::runtime_error(path.string() + ": cannot read the image size from its header (corrupt or crafted)");
  const auto format = unchecked_image_format(data, size);
  throw std::runtime_error(
      path.string() + ": " + (format.empty() ? "not an image in a format read here" : "a " + format + " image") +
      " (by its content); images must be JPEG, PNG, BMP, GIF, WebP, TIFF, PNM (P1-P6) or JPEG 2000, whose "
      "size is checked before decoding");
}

// `name` says where the bytes came from (a path, or "request 3's image") in errors.
cv::Mat decode_bytes(const std::vector<uchar>& bytes, const std::filesystem::path& path, int64_t max_pixels) {
  if (bytes.empty()) throw std::runtime_error(path.string() + ": image file is empty");
  const auto header = checked_header(bytes.data(), bytes.size(), path);  // never decode an unchecked size
  if (auto why = too_many_pixels(path, header, max_pixels); !why.empty()) throw std::runtime_error(why);
  if (jpeg_truncated(bytes)) throw std::runtime_error(path.string() + ": JPEG is truncated");
  cv::Mat img;
  try {
    img = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {  // OpenCV's own limits and codec errors: one line
    throw std::runtime_error(path.string() + ": cannot decode image (" + e.err + ")");
  }
  if (img.empty()) throw std::runtime_error(path.string() + ": cannot decode image");
  return img;
}

cv::Mat decode(const std::filesystem::path& path, int64_t max_pixels) {
  return decode_bytes(read_bytes(path), path, max_pixels);
}

torch::Tensor to_rgb_tensor(const cv::Mat& bgr) {
  // Converted straight into the tensor's memory: no third copy of the image.
  auto t = torch::empty({bgr.rows, bgr.cols, 3}, torch::kUInt8);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, t.data_ptr<uint8_t>());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return t;
}

}  // namespace

ImageHeader read_image_file_header(const std::filesystem::path& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open image file");
  // 64 KiB hold almost every header; a JPEG with large EXIF or ICC segments gets up to 1 MiB.
  std::vector<uint8_t> head;
  for (size_t size : {size_t{64} << 10, size_t{1} << 20}) {
    const size_t had = head.size();
    head.resize(size);
    in.read(reinterpret_cast<char*>(head.data() + had), static_cast<std::streamsize>(size - had));
    head.resize(had + static_cast<size_t>(in.gcount()));
    if (auto h = read_image_header(head.data(), head.size())) return *h;
    if (!in) break;  // the whole file was read
  }
  if (head.empty()) throw std::runtime_error(path.string() + ": image file is empty");
  if (const uint64_t ifd = tiff_ifd_offset(head.data(), head.size()); ifd >= head.size()) {
    // The IFD past what was read (libtiff writes it after the pixels): read it where it is.
    uint8_t count[2];
    in.clear();
    in.seekg(static_cast<std::streamoff>(ifd));
    if (in.read(reinterpret_cast<char*>(count), 2)) {
      const size_t n = head[0] == 'I' ? count[0] | (count[1] << 8) : (count[0] << 8) | count[1];
      std::vector<uint8_t> entries(2 + 12 * n);  // at most 786 KB (n < 65536)
      entries[0] = count[0], entries[1] = count[1];
      in.read(reinterpret_cast<char*>(entries.data() + 2), static_cast<std::streamsize>(12 * n));
      entries.resize(2 + static_cast<size_t>(in.gcount()));
      if (auto h = read_tiff_ifd(head.data(), entries.data(), entries.size())) return *h;
    }
  }
  return checked_header(head.data(), head.size(), path);
}

std::string too_many_pixels(const std::filesystem::path& path, const ImageHeader& h, int64_t max_pixels) {
  const bool over = h.width > 0 && h.height > 0 && h.width > max_pixels / h.height;
  if (!over) return "";
  return path.string() + ": " + h.format + " declares " + std::to_string(h.width) + "x" + std::to_string(h.height) +
         " pixels, above the limit of " + std::to_string(max_pixels) +
         " (a decompression bomb? --max_image_pixels raises the limit)";
}

torch::Tensor load_image_rgb(const std::filesystem::path& path, int64_t max_pixels) {
  return to_rgb_tensor(decode(path, max_pixels));
}

torch::Tensor decode_image_rgb(const std::string& bytes, const std::string& name, int64_t max_pixels) {
  return to_rgb_tensor(decode_bytes(std::vector<uchar>(bytes.begin(), bytes.end()), name, max_pixels));
}

std::string image_problem(const std::filesystem::path& path, int64_t max_pixels) {
  try {
    decode(path, max_pixels);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

void save_image_rgb(const torch::Tensor& image, const std::filesystem::path& path) {
  TORCH_CHECK(image.dim() == 3 && image.size(2) == 3 && image.scalar_type() == torch::kUInt8,
              "save_image_rgb: expected [H, W, 3] uint8, got ", image.sizes(), " ", image.scalar_type());
  auto c = image.contiguous();
  cv::Mat rgb(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC3, c.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> buf;
  const auto ext = path.extension().string();
  if (!cv::imencode(ext.empty() ? ".png" : ext, bgr, buf))
    throw std::runtime_error(path.string() + ": cannot encode image as '" + ext + "'");
  util::write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

}  // namespace detr::datasets
