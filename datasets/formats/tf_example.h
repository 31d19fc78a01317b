// A serialized tf.train.Example (proto/example.proto), parsed by protobuf into plain C++ features.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace detr::datasets::formats {

// A tf.train.Feature: one of the lists (kind says which; none for an empty Feature). A Feature with
// two kinds of list keeps the last, as protobuf's oneof (and TensorFlow) does.
struct TfFeature {
  enum class Kind { none, bytes, floats, ints } kind = Kind::none;
  std::vector<std::string> bytes;
  std::vector<float> floats;
  std::vector<int64_t> ints;
};

// Parsing holds each feature entry, list value and number as an object of its own (an empty bytes
// value is 2 bytes in the record and about 90 in memory), so what a record declares is counted before
// protobuf parses it: the record, what parsing copies out of it and the parsed values may take at most
// this many bytes per record byte, plus kTfExampleParseFloorBytes (room for a record without its
// image holding ~90,000 boxes).
constexpr uint64_t kTfExampleParseBytesPerByte = 8;
constexpr uint64_t kTfExampleParseFloorBytes = uint64_t{16} << 20;

// Thrown by parse_tf_example when a record declares more values than it may parse (one line; the
// caller names the file and record).
class TfExampleTooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The features by key (a repeated key: the last). Throws std::runtime_error "<what>" (one line; the
// caller names the file and record) when the bytes are not an Example: a truncated or malformed field,
// an unmatched group, nesting deeper than detr::pb::kMaxNesting (detr::pb::parse_bounded); and
// TfExampleTooLarge, naming the count, when its entries and values would take more memory than the
// bound above. Unknown fields are skipped, as protobuf does.
std::map<std::string, TfFeature> parse_tf_example(std::string_view record);

// The features, in this order, serialized as a tf.train.Example (the writers' TFRecord records).
std::string serialize_tf_example(const std::vector<std::pair<std::string, TfFeature>>& features);

}  // namespace detr::datasets::formats
