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
  std::string format;  // "JPEG", "PNG", "GIF", "BMP", "WebP", "TIFF", "PNM"
  int64_t width = 0, height = 0;
};

// The declared size, or nullopt for a format not recognised here or a header too short to hold it.
std::optional<ImageHeader> read_image_header(const uint8_t* data, size_t size);

// Whether the bytes start like one of the formats above (then a missing size means a broken header).
bool has_image_magic(const uint8_t* data, size_t size);

// The name of a format that decoders know but whose size is not read here ("JPEG 2000", "BigTIFF",
// "Radiance HDR", "OpenEXR", "PAM", "PFM", ...), or "" when the bytes start like none of them: such
// files are refused by content, whatever their name, since only a checked size is ever decoded.
std::string unchecked_image_format(const uint8_t* data, size_t size);

// PIL's refusal point (Image.MAX_IMAGE_PIXELS * 2, DecompressionBombError): upstream DETR accepts
// every image below it, so this default refuses nothing upstream would train on.
constexpr int64_t kDefaultMaxImagePixels = 2 * 89'478'485;

}  // namespace detr::datasets
