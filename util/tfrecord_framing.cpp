#include "util/tfrecord_framing.h"

#include "util/crc32c.h"

namespace detr::util {

namespace {

uint64_t load_le(const void* p, size_t n_bytes) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (size_t i = 0; i < n_bytes; ++i) v |= uint64_t{b[i]} << (8 * i);
  return v;
}

void put_le(std::string& out, uint64_t v, size_t n_bytes) {
  for (size_t i = 0; i < n_bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

std::string frame_tfrecord(std::string_view data) {
  std::string record;
  record.reserve(kTfRecordHeaderBytes + data.size() + kTfRecordFooterBytes);
  put_le(record, data.size(), 8);
  put_le(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put_le(record, masked_crc32c(data.data(), data.size()), 4);
  return record;
}

TfRecordHeader read_tfrecord_header(const void* header) {
  TfRecordHeader h;
  h.length = load_le(header, 8);
  h.crc_ok = masked_crc32c(header, 8) == load_le(static_cast<const char*>(header) + 8, 4);
  return h;
}

bool tfrecord_data_crc_ok(std::string_view data, const void* footer) {
  return masked_crc32c(data.data(), data.size()) == load_le(footer, 4);
}

}  // namespace detr::util
