#include "src/tools/tensorboard_event_parse.h"

#include <cstring>
#include <stdexcept>

#include "proto/bounded_parse.h"
#include "proto/event.pb.h"

namespace detr {

namespace {

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
  pb::Event proto;
  if (!pb::parse_bounded(bytes, proto))
    throw std::runtime_error("not a protobuf Event (truncated or malformed field, or nested deeper than " +
                             std::to_string(pb::kMaxNesting) + ")");
  ParsedEvent event;
  event.wall_time = proto.wall_time();
  event.step = proto.step();
  if (proto.what_case() == pb::Event::kFileVersion) event.file_version = proto.file_version();
  for (const auto& value : proto.summary().value()) add_value(value, event);
  return event;
}

}  // namespace detr
