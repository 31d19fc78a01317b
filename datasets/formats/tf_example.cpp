#include "datasets/formats/tf_example.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "proto/bounded_parse.h"
#include "proto/example.pb.h"
#include "proto/wire_walk.h"

namespace detr::datasets::formats {

namespace {

using pb::CodedInputStream;
using pb::is;
using pb::kLengthDelimited;
using pb::skip;
using pb::walk_fields;
using pb::WireFormatLite;
using pb::within_length;

// ---- counting what a record declares, before protobuf parses it ----

// Bytes of memory each element takes once parsed and converted to TfFeature (measured with glibc's
// malloc on 2-20 million of each, rounded up): an entry holds its Entry, key, Feature and list
// messages and a map node; a bytes value a std::string in the message and one in TfFeature; a number
// its slot in a repeated field (grown by doubling) and in the vector.
constexpr uint64_t kEntryBytes = 400;
constexpr uint64_t kBytesValueBytes = 96;
constexpr uint64_t kInt64Bytes = 24;
constexpr uint64_t kFloatBytes = 12;

struct Census {
  uint64_t entries = 0, bytes_values = 0, int64s = 0, floats = 0;
  uint64_t values() const { return entries + bytes_values + int64s + floats; }
  // With the record itself and the bytes protobuf copies out of it (keys, bytes values, unknown fields).
  uint64_t parse_bytes(size_t record_bytes) const {
    return 2 * uint64_t{record_bytes} + entries * kEntryBytes + bytes_values * kBytesValueBytes + int64s * kInt64Bytes +
           floats * kFloatBytes;
  }
};

// Int64List: a packed run holds one varint per byte below 0x80 (the last byte of each).
bool count_int64s(CodedInputStream& in, std::string_view record, Census& c) {
  return walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 1, kLengthDelimited))
      return within_length(in, [&](int offset, int size) {
        if (static_cast<size_t>(offset) + static_cast<size_t>(size) > record.size()) return false;
        const std::string_view run = record.substr(static_cast<size_t>(offset), static_cast<size_t>(size));
        c.int64s += static_cast<uint64_t>(std::count_if(run.begin(), run.end(), [](char b) { return !(b & 0x80); }));
        return in.Skip(size);
      });
    if (is(tag, 1, WireFormatLite::WIRETYPE_VARINT)) ++c.int64s;
    return skip(in, tag);
  });
}

bool count_floats(CodedInputStream& in, Census& c) {
  return walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 1, kLengthDelimited))
      return within_length(in, [&](int, int size) {
        c.floats += static_cast<uint64_t>(size) / 4;
        return in.Skip(size);
      });
    if (is(tag, 1, WireFormatLite::WIRETYPE_FIXED32)) ++c.floats;
    return skip(in, tag);
  });
}

bool count_bytes_values(CodedInputStream& in, Census& c) {
  return walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 1, kLengthDelimited)) ++c.bytes_values;
    return skip(in, tag);
  });
}

// Feature: its lists (fields 1 bytes, 2 float, 3 int64).
bool count_feature(CodedInputStream& in, std::string_view record, Census& c) {
  return walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 1, kLengthDelimited)) return within_length(in, [&](int, int) { return count_bytes_values(in, c); });
    if (is(tag, 2, kLengthDelimited)) return within_length(in, [&](int, int) { return count_floats(in, c); });
    if (is(tag, 3, kLengthDelimited)) return within_length(in, [&](int, int) { return count_int64s(in, record, c); });
    return skip(in, tag);
  });
}

// Features: its entries (field 1), each a key (1) and a Feature (2); Example: its Features (1).
bool count_features(CodedInputStream& in, std::string_view record, Census& c) {
  return walk_fields(in, [&](uint32_t tag) {
    if (!is(tag, 1, kLengthDelimited)) return skip(in, tag);
    ++c.entries;
    return within_length(in, [&](int, int) {
      return walk_fields(in, [&](uint32_t entry_tag) {
        if (is(entry_tag, 2, kLengthDelimited))
          return within_length(in, [&](int, int) { return count_feature(in, record, c); });
        return skip(in, entry_tag);
      });
    });
  });
}

// The census of an Example's bytes; false when they are not a message (protobuf would refuse them too).
bool count_example(std::string_view record, Census& c) {
  if (record.size() > static_cast<size_t>(INT_MAX)) return false;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(record.data()), static_cast<int>(record.size()));
  in.SetRecursionLimit(pb::kMaxNesting);  // groups in unknown fields
  in.PushLimit(static_cast<int>(record.size()));
  return walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 1, kLengthDelimited)) return within_length(in, [&](int, int) { return count_features(in, record, c); });
    return skip(in, tag);
  });
}

std::string malformed() {
  return "truncated or malformed protobuf field, or nesting deeper than " + std::to_string(pb::kMaxNesting);
}

// Refuses a record whose entries and values would take more than the parse bound.
void check_census(std::string_view record) {
  Census c;
  if (!count_example(record, c)) throw std::runtime_error(malformed());
  const uint64_t limit = kTfExampleParseBytesPerByte * record.size() + kTfExampleParseFloorBytes;
  const uint64_t needed = c.parse_bytes(record.size());
  if (needed > limit)
    throw TfExampleTooLarge("tf.train.Example of " + std::to_string(record.size()) + " bytes declares " +
                            std::to_string(c.values()) + " values (entries " + std::to_string(c.entries) +
                            ", bytes values " + std::to_string(c.bytes_values) + ", numbers " +
                            std::to_string(c.int64s + c.floats) + "), about " + std::to_string(needed) +
                            " bytes with the record once parsed: more than " + std::to_string(limit) + " (" +
                            std::to_string(kTfExampleParseBytesPerByte) + " per record byte + " +
                            std::to_string(kTfExampleParseFloorBytes >> 20) + " MiB)");
}

// ---- conversion ----

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
    default: break;
  }
  return f;
}

}  // namespace

std::map<std::string, TfFeature> parse_tf_example(std::string_view record) {
  check_census(record);
  pb::Example example;
  if (!pb::parse_bounded(record, example)) throw std::runtime_error(malformed());
  std::map<std::string, TfFeature> features;
  for (auto& entry : *example.mutable_features()->mutable_feature())
    features[entry.key()] = take_feature(*entry.mutable_value());
  return features;
}

std::string serialize_tf_example(const std::vector<std::pair<std::string, TfFeature>>& features) {
  pb::Example example;
  for (const auto& [key, feature] : features) {
    auto& entry = *example.mutable_features()->add_feature();
    entry.set_key(key);
    auto& value = *entry.mutable_value();
    switch (feature.kind) {
      case TfFeature::Kind::bytes:
        for (const auto& b : feature.bytes) value.mutable_bytes_list()->add_value(b);
        break;
      case TfFeature::Kind::floats:
        value.mutable_float_list()->mutable_value()->Add(feature.floats.begin(), feature.floats.end());
        break;
      case TfFeature::Kind::ints:
        value.mutable_int64_list()->mutable_value()->Add(feature.ints.begin(), feature.ints.end());
        break;
      case TfFeature::Kind::none: break;
    }
  }
  return example.SerializeAsString();
}

}  // namespace detr::datasets::formats
