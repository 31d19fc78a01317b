// A serialized tf.train.Example (proto/example.proto), parsed by protobuf into plain C++ features.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
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

// The features by key (a repeated key: the last). Throws std::runtime_error "<what>" (one line; the
// caller names the file and record) when the bytes are not an Example: a truncated or malformed field,
// an unmatched group, nesting deeper than detr::pb::kMaxNesting (detr::pb::parse_bounded). Unknown
// fields are skipped, as protobuf does. Memory: the features hold at most the record's bytes plus a
// fixed cost per value.
std::map<std::string, TfFeature> parse_tf_example(std::string_view record);

}  // namespace detr::datasets::formats
