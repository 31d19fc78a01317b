#include "src/tools/tensorboard_reader.h"

#include <stdio_ext.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string_view>
#include "src/tensorboard.h"
#include "util/crc32c.h"

namespace detr {

namespace {

using namespace tensorboard_format;

// ---- decoding ----

uint64_t load_le(const char* p, size_t n_bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < n_bytes; ++i) v |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Minimal protobuf reader over one message; throws std::runtime_error (without file context).
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view bytes) : p_(bytes) {}
  bool done() const { return pos_ == p_.size(); }

  uint32_t next_key(Wire& wire) {
    const uint64_t key = varint();
    wire = static_cast<Wire>(key & 7);
    return static_cast<uint32_t>(key >> 3);
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const auto b = static_cast<unsigned char>(p_[pos_++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw std::runtime_error("varint longer than 10 bytes");
  }
  uint64_t fixed(size_t n_bytes) {
    need(n_bytes);
    const uint64_t v = load_le(p_.data() + pos_, n_bytes);
    pos_ += n_bytes;
    return v;
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    need(n);
    const std::string_view s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void skip(Wire wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kFixed64: fixed(8); break;
      case kLengthDelimited: bytes(); break;
      case kFixed32: fixed(4); break;
      default: throw std::runtime_error("unsupported wire type " + std::to_string(int(wire)));
    }
  }
  static void expect(uint32_t field, Wire wire, Wire want) {
    if (wire != want)
      throw std::runtime_error("field " + std::to_string(field) + " has wire type " +
                               std::to_string(int(wire)) + ", expected " + std::to_string(int(want)));
  }

 private:
  void need(uint64_t n) const {
    if (n > p_.size() - pos_) throw std::runtime_error("protobuf field runs past the end of the Event");
  }
  std::string_view p_;
  size_t pos_ = 0;
};

struct ParsedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<std::pair<std::string, float>> values;  // Values that carry simple_value
  std::vector<TensorBoardImage> images;               // Values that carry an image
  std::vector<TensorBoardTensor> tensors;             // Values that carry a float tensor
};

// Fields `field` of a message, as length-delimited values, each to `visit`.
template <class Visit>
void each_bytes_field(std::string_view bytes, uint32_t wanted, Visit visit) {
  ProtoReader r(bytes);
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == wanted && wire == kLengthDelimited)
      visit(r.bytes());
    else
      r.skip(wire);
  }
}

// SummaryMetadata -> its plugin_data.plugin_name.
std::string plugin_name(std::string_view metadata) {
  std::string name;
  each_bytes_field(metadata, kPluginData, [&](std::string_view plugin_data) {
    each_bytes_field(plugin_data, kPluginName, [&](std::string_view n) { name = std::string(n); });
  });
  return name;
}

// TensorProto (DT_FLOAT, float_val packed or tensor_content) -> shape and values.
void parse_tensor(std::string_view bytes, TensorBoardTensor& t) {
  ProtoReader r(bytes);
  auto floats = [&](std::string_view raw) {
    if (raw.size() % 4) throw std::runtime_error("float values of " + std::to_string(raw.size()) + " bytes");
    for (size_t i = 0; i < raw.size(); i += 4) {
      const auto bits = static_cast<uint32_t>(load_le(raw.data() + i, 4));
      float v;
      std::memcpy(&v, &bits, sizeof v);
      t.values.push_back(v);
    }
  };
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == kDtype) {
      ProtoReader::expect(field, wire, kVarint);
      if (r.varint() != kDtFloat) throw std::runtime_error("a tensor that is not float32");
    } else if (field == kTensorShape) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      each_bytes_field(r.bytes(), kDim, [&](std::string_view dim) {
        ProtoReader d(dim);
        while (!d.done()) {
          Wire w;
          const uint32_t f = d.next_key(w);
          if (f == kDimSize && w == kVarint)
            t.shape.push_back(static_cast<int64_t>(d.varint()));
          else
            d.skip(w);
        }
      });
    } else if (field == kFloatVal || field == kTensorContent) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      floats(r.bytes());
    } else {
      r.skip(wire);
    }
  }
}

TensorBoardImage parse_image(std::string_view bytes) {
  ProtoReader r(bytes);
  TensorBoardImage image;
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == kHeight || field == kWidth || field == kColorspace) {
      ProtoReader::expect(field, wire, kVarint);
      (field == kHeight ? image.height : field == kWidth ? image.width : image.colorspace) =
          static_cast<int64_t>(r.varint());
    } else if (field == kEncodedImage) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      image.encoded = std::string(r.bytes());
    } else {
      r.skip(wire);
    }
  }
  return image;
}

void parse_value(std::string_view bytes, ParsedEvent& event) {
  ProtoReader r(bytes);
  std::string tag;
  std::optional<float> simple_value;
  std::optional<TensorBoardImage> image;
  std::optional<TensorBoardTensor> tensor;
  std::string plugin;
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == kTag) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      tag = std::string(r.bytes());
    } else if (field == kSimpleValue) {
      ProtoReader::expect(field, wire, kFixed32);
      const auto bits = static_cast<uint32_t>(r.fixed(4));
      float v;
      std::memcpy(&v, &bits, sizeof v);
      simple_value = v;
    } else if (field == kImage) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      image = parse_image(r.bytes());
    } else if (field == kTensor) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      tensor.emplace();
      parse_tensor(r.bytes(), *tensor);
    } else if (field == kMetadata) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      plugin = plugin_name(r.bytes());
    } else {
      r.skip(wire);  // histo, tensor, metadata, ...
    }
  }
  if (simple_value) event.values.emplace_back(tag, *simple_value);
  if (image) {
    image->tag = tag;
    event.images.push_back(std::move(*image));
  }
  if (tensor) {
    tensor->tag = std::move(tag);
    tensor->plugin = std::move(plugin);
    event.tensors.push_back(std::move(*tensor));
  }
}

void parse_summary(std::string_view bytes, ParsedEvent& event) {
  ProtoReader r(bytes);
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == kValue) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      parse_value(r.bytes(), event);
    } else {
      r.skip(wire);
    }
  }
}

ParsedEvent parse_event(std::string_view bytes) {
  ParsedEvent event;
  ProtoReader r(bytes);
  while (!r.done()) {
    Wire wire;
    const uint32_t field = r.next_key(wire);
    if (field == kWallTime) {
      ProtoReader::expect(field, wire, kFixed64);
      const uint64_t bits = r.fixed(8);
      std::memcpy(&event.wall_time, &bits, sizeof bits);
    } else if (field == kStep) {
      ProtoReader::expect(field, wire, kVarint);
      event.step = static_cast<int64_t>(r.varint());
    } else if (field == kFileVersionField) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      event.file_version = std::string(r.bytes());
    } else if (field == kSummary) {
      ProtoReader::expect(field, wire, kLengthDelimited);
      parse_summary(r.bytes(), event);
    } else {
      r.skip(wire);  // graph_def, log_message, session_log, ...
    }
  }
  return event;
}

std::string read_file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open TensorBoard event file " + file.string());
  std::string bytes;
  in.seekg(0, std::ios::end);
  bytes.resize(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw std::runtime_error("cannot read TensorBoard event file " + file.string());
  return bytes;
}

}  // namespace

std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& file) {
  return read_tensorboard_events(file).scalars;
}

TensorBoardEvents read_tensorboard_events(const std::filesystem::path& file) {
  const std::string bytes = read_file_bytes(file);
  TensorBoardEvents events;
  auto& scalars = events.scalars;
  size_t offset = 0;
  for (size_t index = 0; offset < bytes.size(); ++index) {
    const auto fail = [&](const std::string& why) {
      throw std::runtime_error("TensorBoard event file " + file.string() + ": record " +
                               std::to_string(index) + " at offset " + std::to_string(offset) +
                               ": " + why);
    };
    const size_t left = bytes.size() - offset;
    const char* record = bytes.data() + offset;
    if (left < kHeaderBytes)
      fail("truncated last record: " + std::to_string(left) + " of 12 header bytes (writer killed "
           "mid-write?)");
    if (util::masked_crc32c(record, 8) != load_le(record + 8, 4))
      fail("length CRC mismatch (corrupt length field)");
    const uint64_t length = load_le(record, 8);
    if (left < kHeaderBytes + kFooterBytes || length > left - kHeaderBytes - kFooterBytes)
      fail("truncated last record: needs " + std::to_string(length + kHeaderBytes + kFooterBytes) +
           " bytes, " + std::to_string(left) + " left (writer killed mid-write?)");
    const std::string_view data(record + kHeaderBytes, length);
    if (util::masked_crc32c(data.data(), data.size()) != load_le(record + kHeaderBytes + length, 4))
      fail("data CRC mismatch (corrupt Event bytes)");

    ParsedEvent event;
    try {
      event = parse_event(data);
    } catch (const std::runtime_error& e) {
      fail(std::string("malformed Event: ") + e.what());
    }
    if (index == 0 && !event.file_version)
      fail("first event has no file_version (expected \"" + std::string(kFileVersion) + "\")");
    if (event.file_version && *event.file_version != kFileVersion)
      fail("file_version is \"" + *event.file_version + "\", expected \"" + kFileVersion + "\"");
    for (auto& [tag, value] : event.values)
      scalars.push_back({std::move(tag), event.step, event.wall_time, value});
    for (auto& image : event.images) {
      image.step = event.step;
      events.images.push_back(std::move(image));
    }
    for (auto& tensor : event.tensors) {
      tensor.step = event.step;
      events.tensors.push_back(std::move(tensor));
    }
    offset += kHeaderBytes + length + kFooterBytes;
  }
  if (offset == 0)
    throw std::runtime_error("TensorBoard event file " + file.string() +
                             " is empty (no file_version event)");
  return events;
}

}  // namespace detr
