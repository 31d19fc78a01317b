#include "src/tools/tensorboard_event_parse.h"

#include <climits>
#include <cstring>
#include <stdexcept>

#include "proto/bounded_parse.h"
#include "proto/event.pb.h"
#include "proto/wire_walk.h"

namespace detr {

namespace {

// ---- counting what an Event declares, before protobuf parses it ----

// Bytes each element takes once parsed and converted (an estimate on the high side: a Value holds its
// message, tag string, metadata and a ParsedEvent entry; a dimension its Dim message and two slots; a
// float its slot in the repeated field and in the vector).
constexpr uint64_t kValueBytes = 512;
constexpr uint64_t kDimBytes = 64;
constexpr uint64_t kFloatBytes = 12;

struct Census {
  uint64_t values = 0, dims = 0, floats = 0;
  uint64_t parse_bytes(size_t record_bytes) const {
    return 3 * uint64_t{record_bytes} + values * kValueBytes + dims * kDimBytes + floats * kFloatBytes;
  }
};

// TensorProto: shape dims (2 > 2) and float_val (5, packed or not).
bool count_tensor(pb::CodedInputStream& in, Census& c) {
  using pb::is;
  return pb::walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 2, pb::kLengthDelimited))
      return pb::within_length(in, [&](int, int) {
        return pb::walk_fields(in,
                               [&](uint32_t t) { return (c.dims += is(t, 2, pb::kLengthDelimited)), pb::skip(in, t); });
      });
    if (is(tag, 5, pb::kLengthDelimited))
      return pb::within_length(
          in, [&](int, int size) { return (c.floats += static_cast<uint64_t>(size) / 4), in.Skip(size); });
    c.floats += is(tag, 5, pb::WireFormatLite::WIRETYPE_FIXED32);
    return pb::skip(in, tag);
  });
}

// Event > summary (5) > value (1) > tensor (8).
bool count_event(std::string_view bytes, Census& c) {
  using pb::is;
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return false;
  pb::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  in.SetRecursionLimit(pb::kMaxNesting);
  in.PushLimit(static_cast<int>(bytes.size()));
  const auto value = [&](uint32_t tag) {
    if (is(tag, 8, pb::kLengthDelimited)) return pb::within_length(in, [&](int, int) { return count_tensor(in, c); });
    return pb::skip(in, tag);
  };
  const auto summary = [&](uint32_t tag) {
    if (!is(tag, 1, pb::kLengthDelimited)) return pb::skip(in, tag);
    ++c.values;
    return pb::within_length(in, [&](int, int) { return pb::walk_fields(in, value); });
  };
  return pb::walk_fields(in, [&](uint32_t tag) {
    if (is(tag, 5, pb::kLengthDelimited))
      return pb::within_length(in, [&](int, int) { return pb::walk_fields(in, summary); });
    return pb::skip(in, tag);
  });
}

std::string malformed() {
  return "not a protobuf Event (truncated or malformed field, or nested deeper than " +
         std::to_string(pb::kMaxNesting) + ")";
}

// Refuses an Event whose values, dimensions and floats would take more than the parse bound.
void check_census(std::string_view bytes) {
  Census c;
  if (!count_event(bytes, c)) throw std::runtime_error(malformed());
  const uint64_t limit = kEventParseBytesPerByte * bytes.size() + kEventParseFloorBytes;
  if (c.parse_bytes(bytes.size()) > limit)
    throw std::runtime_error("Event of " + std::to_string(bytes.size()) + " bytes declares " +
                             std::to_string(c.values) + " summary values, " + std::to_string(c.dims) +
                             " tensor dimensions and " + std::to_string(c.floats) + " floats, about " +
                             std::to_string(c.parse_bytes(bytes.size())) + " bytes once parsed: more than " +
                             std::to_string(limit) + " (" + std::to_string(kEventParseBytesPerByte) + " per byte + " +
                             std::to_string(kEventParseFloorBytes >> 20) + " MiB)");
}

// TensorProto (DT_FLOAT, float_val or tensor_content) -> shape and values.
TensorBoardTensor tensor_of(const pb::TensorProto& proto) {
  if (proto.dtype() != pb::DT_FLOAT)
    throw std::runtime_error("Summary.Value.tensor has dtype " + std::to_string(proto.dtype()) + ", not DT_FLOAT (1)");
  TensorBoardTensor t;
  for (const auto& dim : proto.tensor_shape().dim()) t.shape.push_back(dim.size());
  t.values.assign(proto.float_val().begin(), proto.float_val().end());
  const std::string& raw = proto.tensor_content();
  if (raw.size() % 4)
    throw std::runtime_error("Summary.Value.tensor.tensor_content of " + std::to_string(raw.size()) +
                             " bytes, not float32 values");
  for (size_t i = 0; i < raw.size(); i += 4) {
    uint32_t bits = 0;
    for (int b = 3; b >= 0; --b) bits = (bits << 8) | static_cast<unsigned char>(raw[i + b]);  // little-endian
    float v;
    std::memcpy(&v, &bits, sizeof v);
    t.values.push_back(v);
  }
  return t;
}

TensorBoardImage image_of(const pb::Summary::Image& proto) {
  TensorBoardImage image;
  image.height = proto.height();
  image.width = proto.width();
  image.colorspace = proto.colorspace();
  image.encoded = proto.encoded_image_string();
  return image;
}

void add_value(const pb::Summary::Value& value, ParsedEvent& event) {
  switch (value.value_case()) {
    case pb::Summary::Value::kSimpleValue: event.values.emplace_back(value.tag(), value.simple_value()); break;
    case pb::Summary::Value::kImage:
      event.images.push_back(image_of(value.image()));
      event.images.back().tag = value.tag();
      break;
    case pb::Summary::Value::kTensor:
      event.tensors.push_back(tensor_of(value.tensor()));
      event.tensors.back().tag = value.tag();
      event.tensors.back().plugin = value.metadata().plugin_data().plugin_name();
      break;
    default: break;  // histogram, audio, ...: not read here
  }
}

}  // namespace

ParsedEvent parse_tensorboard_event(std::string_view bytes) {
  check_census(bytes);
  pb::Event proto;
  if (!pb::parse_bounded(bytes, proto)) throw std::runtime_error(malformed());
  ParsedEvent event;
  event.wall_time = proto.wall_time();
  event.step = proto.step();
  if (proto.what_case() == pb::Event::kFileVersion) event.file_version = proto.file_version();
  for (const auto& value : proto.summary().value()) add_value(value, event);
  return event;
}

}  // namespace detr
