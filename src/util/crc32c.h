// CRC-32C (Castagnoli), the checksum of TFRecord framing (TensorBoard event files, tf.Example files).
#pragma once
#include <cstddef>
#include <cstdint>

namespace detr::util {

// Reflected polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF: crc32c("123456789", 9) == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);

// TFRecord's masked CRC, ((crc >> 15) | (crc << 17)) + 0xa282ead8 (TensorFlow's crc32c.h: "it is
// problematic to compute the CRC of a string that contains embedded CRCs").
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace detr::util
