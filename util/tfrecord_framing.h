// TFRecord framing, shared by the TensorBoard event writer and reader and the tf.Example reader and writer
// (datasets/formats/tfrecord.h). Each record, little-endian:
//   uint64 length | uint32 masked_crc32c(the 8 length bytes) | length data bytes | uint32 masked_crc32c(data)
// The data is a serialized protobuf message (an Event, a tf.train.Example); the framing is not.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace detr::util {

constexpr size_t kTfRecordHeaderBytes = 12;  // uint64 length + uint32 masked CRC of it
constexpr size_t kTfRecordFooterBytes = 4;   // uint32 masked CRC of the data

// `data` framed as one record.
std::string frame_tfrecord(std::string_view data);

struct TfRecordHeader {
  uint64_t length = 0;  // the data's declared length (to be checked against what is left)
  bool crc_ok = false;  // the length's CRC matches
};
// Decodes the kTfRecordHeaderBytes bytes at `header`.
TfRecordHeader read_tfrecord_header(const void* header);

// Whether the kTfRecordFooterBytes bytes at `footer` are the masked CRC of `data`.
bool tfrecord_data_crc_ok(std::string_view data, const void* footer);

}  // namespace detr::util
