// Image dimensions from a file's header, before any decoding: a small file can declare a huge
// image (a decompression bomb), and what the header declares is what a decoder would allocate.
// Pure: bytes in, size out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace detr::datasets {

struct ImageHeader {
  std::string format;  // "JPEG", "PNG", "GIF", "BMP", "WebP", "TIFF", "PNM", "JPEG 2000"
  int64_t width = 0, height = 0;
};

// The declared size, or nullopt for a format not recognised here or a header too short to hold it.
std::optional<ImageHeader> read_image_header(const uint8_t* data, size_t size);

// Whether the bytes start like one of the formats above (then a missing size means a broken header).
bool has_image_magic(const uint8_t* data, size_t size);

// A classic TIFF keeps its first IFD (which holds the size) anywhere, often at the file's end: its
// offset, from the file's first 8 bytes (0 when they are not a TIFF header). read_tiff_ifd reads the
// size from the IFD's bytes read there.
uint64_t tiff_ifd_offset(const uint8_t* header, size_t size);
std::optional<ImageHeader> read_tiff_ifd(const uint8_t* header, const uint8_t* ifd, size_t size);

// The name of a format that decoders know but whose size is not read here ("BigTIFF",
// "Radiance HDR", "OpenEXR", "PAM", "PFM", ...), or "" when the bytes start like none of them: such
// files are refused by content, whatever their name, since only a checked size is ever decoded.
std::string unchecked_image_format(const uint8_t* data, size_t size);

// PIL's refusal point (Image.MAX_IMAGE_PIXELS * 2, DecompressionBombError): upstream DETR accepts
// every image below it, so this default refuses nothing upstream would train on.
constexpr int64_t kDefaultMaxImagePixels = 2 * 89'478'485;

}  // namespace detr::datasets
