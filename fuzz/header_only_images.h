// Header-only images for the fuzz targets' scratch exports: just the bytes a header check reads
// (the size), never decodable pixels.
#pragma once
#include <cstdint>
#include <string>

namespace detr::fuzz {

inline std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// Signature + IHDR (the CRC is not checked by a header read).
inline std::string png_header(uint32_t w, uint32_t h) {
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(w) + be32(h) +
         std::string("\x08\x02\0\0\0", 5) + be32(0);
}

// SOI + SOF0.
inline std::string jpeg_header(uint16_t w, uint16_t h) {
  std::string s("\xFF\xD8\xFF\xC0\x00\x11\x08", 7);
  s += static_cast<char>(h >> 8);
  s += static_cast<char>(h & 0xFF);
  s += static_cast<char>(w >> 8);
  s += static_cast<char>(w & 0xFF);
  s += std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 10);
  return s;
}

}  // namespace detr::fuzz
