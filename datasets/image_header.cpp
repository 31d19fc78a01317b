#include "datasets/image_header.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

namespace detr::datasets {

namespace {

uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t le16(const uint8_t* p) { return (uint32_t(p[1]) << 8) | p[0]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le32(const uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

std::optional<ImageHeader> jpeg(const uint8_t* d, size_t n) {
  // Marker segments up to the first start-of-frame (SOF0..SOF15 except DHT C4, JPG C8, DAC CC), read
  // as libjpeg reads them: bytes between segments that are not 0xFF are skipped (libjpeg warns and
  // resynchronises), so a decoder never finds a frame header this walk did not see.
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) {
      ++i;
      continue;
    }
    const uint8_t m = d[i + 1];
    if (m == 0xFF) {
      ++i;
      continue;
    }
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // markers without a length
      i += 2;
      continue;
    }
    const size_t len = be16(d + i + 2);
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (i + 9 > n) return std::nullopt;
      return ImageHeader{"JPEG", be16(d + i + 7), be16(d + i + 5)};
    }
    if (m == 0xDA || m == 0xD9) return std::nullopt;  // a scan or the end before any frame header
    i += 2 + std::max<size_t>(len, 2);
  }
  return std::nullopt;
}

// A TIFF IFD's width and height (tags 256, 257); `ifd` points at its entry count.
std::optional<ImageHeader> tiff_entries(const uint8_t* ifd, size_t n, bool le) {
  auto u16 = [&](size_t at) { return le ? le16(ifd + at) : be16(ifd + at); };
  auto u32 = [&](size_t at) { return le ? le32(ifd + at) : be32(ifd + at); };
  if (n < 2) return std::nullopt;
  const size_t count = u16(0);
  int64_t w = -1, h = -1;
  for (size_t k = 0; k < count && 2 + 12 * (k + 1) <= n; ++k) {
    const size_t e = 2 + 12 * k;
    const uint32_t tag = u16(e), type = u16(e + 2);
    const int64_t value = type == 3 ? u16(e + 8) : u32(e + 8);  // SHORT or LONG
    if (tag == 256) w = std::max(w, value);  // duplicated tags: the larger, whichever a decoder takes
    if (tag == 257) h = std::max(h, value);
  }
  if (w < 0 || h < 0) return std::nullopt;
  return ImageHeader{"TIFF", w, h};
}

std::optional<ImageHeader> tiff(const uint8_t* d, size_t n) {
  const size_t ifd = tiff_ifd_offset(d, n);
  if (ifd < 8 || ifd + 2 > n) return std::nullopt;
  return tiff_entries(d + ifd, n - ifd, d[0] == 'I');
}

// JPEG 2000: a raw codestream (SOC, then SIZ: Xsiz, Ysiz, XOsiz, YOsiz), or a JP2 file whose jp2h box
// holds an ihdr box (HEIGHT, WIDTH).
std::optional<ImageHeader> jpeg2000(const uint8_t* d, size_t n) {
  if (n >= 24 && std::memcmp(d, "\xFF\x4F\xFF\x51", 4) == 0) {
    const int64_t x = be32(d + 8), y = be32(d + 12), x0 = be32(d + 16), y0 = be32(d + 20);
    if (x0 > x || y0 > y) return std::nullopt;
    return ImageHeader{"JPEG 2000", x - x0, y - y0};
  }
  // Boxes: LBox (0: to the end; 1: an 8-byte XLBox follows), TBox, contents.
  const auto find_box = [&](size_t from, size_t to, const char* type) -> std::pair<size_t, size_t> {
    for (size_t at = from; at + 8 <= to;) {
      uint64_t len = be32(d + at);
      size_t head = 8;
      if (len == 1) {
        if (at + 16 > to) break;
        len = (uint64_t(be32(d + at + 8)) << 32) | be32(d + at + 12);
        head = 16;
      } else if (len == 0) {
        len = to - at;
      }
      if (len < head || len > to - at) len = to - at;  // cut short by the bytes at hand
      if (std::memcmp(d + at + 4, type, 4) == 0) return {at + head, at + len};
      at += len;
    }
    return {0, 0};
  };
  const auto [h0, h1] = find_box(0, n, "jp2h");
  if (h1 == 0) return std::nullopt;
  const auto [i0, i1] = find_box(h0, h1, "ihdr");
  if (i1 < i0 + 8) return std::nullopt;
  return ImageHeader{"JPEG 2000", be32(d + i0 + 4), be32(d + i0)};
}

bool jpeg2000_magic(const uint8_t* d, size_t n) {
  return (n >= 4 && std::memcmp(d, "\xFF\x4F\xFF\x51", 4) == 0) ||
         (n >= 12 && std::memcmp(d, "\0\0\0\x0CjP  \r\n\x87\n", 12) == 0);
}

std::optional<ImageHeader> pnm(const uint8_t* d, size_t n) {
  // P1..P6: magic, then width and height as ASCII decimals, separated by whitespace and # comments.
  int64_t values[2];
  size_t i = 2;
  for (auto& v : values) {
    while (i < n && (std::isspace(d[i]) || d[i] == '#')) {
      if (d[i] == '#')
        while (i < n && d[i] != '\n') ++i;
      else
        ++i;
    }
    if (i >= n || !std::isdigit(d[i])) return std::nullopt;
    v = 0;
    for (; i < n && std::isdigit(d[i]); ++i) {
      if (v > (int64_t{1} << 40)) return std::nullopt;
      v = v * 10 + (d[i] - '0');
    }
  }
  return ImageHeader{"PNM", values[0], values[1]};
}

std::optional<ImageHeader> webp(const uint8_t* d, size_t n) {
  if (n < 30) return std::nullopt;
  if (std::memcmp(d + 12, "VP8 ", 4) == 0) return ImageHeader{"WebP", le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF};
  if (std::memcmp(d + 12, "VP8L", 4) == 0) {
    const uint32_t b = le32(d + 21);
    return ImageHeader{"WebP", int64_t(b & 0x3FFF) + 1, int64_t((b >> 14) & 0x3FFF) + 1};
  }
  if (std::memcmp(d + 12, "VP8X", 4) == 0) {
    const int64_t w = int64_t(d[24] | (d[25] << 8) | (d[26] << 16)) + 1;
    const int64_t h = int64_t(d[27] | (d[28] << 8) | (d[29] << 16)) + 1;
    return ImageHeader{"WebP", w, h};
  }
  return std::nullopt;
}

}  // namespace

uint64_t tiff_ifd_offset(const uint8_t* d, size_t n) {
  if (n < 8 || !(std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return 0;
  return d[0] == 'I' ? le32(d + 4) : be32(d + 4);
}

std::optional<ImageHeader> read_tiff_ifd(const uint8_t* header, const uint8_t* ifd, size_t size) {
  if (tiff_ifd_offset(header, 8) == 0) return std::nullopt;
  return tiff_entries(ifd, size, header[0] == 'I');
}

bool has_image_magic(const uint8_t* d, size_t n) {
  return (n >= 2 && d[0] == 0xFF && d[1] == 0xD8) || (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) ||
         (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) ||
         (n >= 2 && d[0] == 'B' && d[1] == 'M') ||
         (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) ||
         (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) ||
         (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && std::isspace(d[2])) || jpeg2000_magic(d, n);
}

std::string unchecked_image_format(const uint8_t* d, size_t n) {
  const auto starts = [&](const char* magic, size_t len) { return n >= len && std::memcmp(d, magic, len) == 0; };
  if (starts("II+\0", 4) || starts("MM\0+", 4)) return "BigTIFF";
  if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) return "Radiance HDR";
  if (starts("v/1\x01", 4)) return "OpenEXR";
  if (starts("P7", 2)) return "PAM";
  if (starts("PF", 2) || starts("Pf", 2)) return "PFM";
  if (starts("\x59\xA6\x6A\x95", 4)) return "Sun raster";
  if (starts("\0\0\0", 3) && n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) return "HEIF/AVIF";
  if (starts("\xFF\x0A", 2) || starts("\0\0\0\x0CJXL \r\n\x87\n", 12)) return "JPEG XL";
  if (starts("8BPS", 4)) return "Photoshop";
  if (starts("gimp xcf", 8)) return "GIMP";
  return "";
}

std::optional<ImageHeader> read_image_header(const uint8_t* d, size_t n) {
  if (n >= 4 && d[0] == 0xFF && d[1] == 0xD8) return jpeg(d, n);
  if (n >= 24 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageHeader{"PNG", be32(d + 16), be32(d + 20)};
  if (n >= 10 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0))
    return ImageHeader{"GIF", le16(d + 6), le16(d + 8)};
  if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
    const int64_t w = static_cast<int32_t>(le32(d + 18)), h = static_cast<int32_t>(le32(d + 22));
    return ImageHeader{"BMP", w < 0 ? -w : w, h < 0 ? -h : h};
  }
  if (n >= 16 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return webp(d, n);
  if (n >= 8 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return tiff(d, n);
  if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6') return pnm(d, n);
  if (jpeg2000_magic(d, n)) return jpeg2000(d, n);
  return std::nullopt;
}

}  // namespace detr::datasets
