#include "datasets/formats/tf_example.h"

#include <stdexcept>
#include <utility>

#include "proto/bounded_parse.h"
#include "proto/example.pb.h"

namespace detr::datasets::formats {

namespace {

// Moves the list out of `feature` (no copy of the bytes, which may be an image).
TfFeature take_feature(pb::Feature& feature) {
  TfFeature f;
  switch (feature.kind_case()) {
    case pb::Feature::kBytesList: {
      f.kind = TfFeature::Kind::bytes;
      auto& values = *feature.mutable_bytes_list()->mutable_value();
      f.bytes.reserve(static_cast<size_t>(values.size()));
      for (std::string& v : values) f.bytes.push_back(std::move(v));
      break;
    }
    case pb::Feature::kFloatList:
      f.kind = TfFeature::Kind::floats;
      f.floats.assign(feature.float_list().value().begin(), feature.float_list().value().end());
      break;
    case pb::Feature::kInt64List:
      f.kind = TfFeature::Kind::ints;
      f.ints.assign(feature.int64_list().value().begin(), feature.int64_list().value().end());
      break;
    default:
      break;
  }
  return f;
}

}  // namespace

std::map<std::string, TfFeature> parse_tf_example(std::string_view record) {
  pb::Example example;
  if (!pb::parse_bounded(record, example))
    throw std::runtime_error("truncated or malformed protobuf field, or nesting deeper than " +
                             std::to_string(pb::kMaxNesting));
  std::map<std::string, TfFeature> features;
  for (auto& entry : *example.mutable_features()->mutable_feature())
    features[entry.key()] = take_feature(*entry.mutable_value());
  return features;
}

}  // namespace detr::datasets::formats
