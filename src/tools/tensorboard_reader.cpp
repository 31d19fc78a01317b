#include "src/tools/tensorboard_reader.h"

#include <fstream>
#include <stdexcept>
#include <string_view>

#include "src/tensorboard_event.h"
#include "src/tools/tensorboard_event_parse.h"
#include "util/tfrecord_framing.h"

namespace detr {

namespace {

using util::kTfRecordFooterBytes;
using util::kTfRecordHeaderBytes;
constexpr const char* kFileVersion = tensorboard::kFileVersion;

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
      throw std::runtime_error("TensorBoard event file " + file.string() + ": record " + std::to_string(index) +
                               " at offset " + std::to_string(offset) + ": " + why);
    };
    const size_t left = bytes.size() - offset;
    const char* record = bytes.data() + offset;
    if (left < kTfRecordHeaderBytes)
      fail("truncated last record: " + std::to_string(left) +
           " of 12 header bytes (writer killed "
           "mid-write?)");
    const util::TfRecordHeader header = util::read_tfrecord_header(record);
    if (!header.crc_ok) fail("length CRC mismatch (corrupt length field)");
    const uint64_t length = header.length;
    if (left < kTfRecordHeaderBytes + kTfRecordFooterBytes ||
        length > left - kTfRecordHeaderBytes - kTfRecordFooterBytes)
      fail("truncated last record: needs " + std::to_string(length + kTfRecordHeaderBytes + kTfRecordFooterBytes) +
           " bytes, " + std::to_string(left) + " left (writer killed mid-write?)");
    const std::string_view data(record + kTfRecordHeaderBytes, length);
    if (!util::tfrecord_data_crc_ok(data, record + kTfRecordHeaderBytes + length))
      fail("data CRC mismatch (corrupt Event bytes)");

    ParsedEvent event;
    try {
      event = parse_tensorboard_event(data);
    } catch (const std::runtime_error& e) {
      fail(std::string("malformed Event: ") + e.what());
    }
    if (index == 0 && !event.file_version)
      fail("first event has no file_version (expected \"" + std::string(kFileVersion) + "\")");
    if (event.file_version && *event.file_version != kFileVersion)
      fail("file_version is \"" + *event.file_version + "\", expected \"" + kFileVersion + "\"");
    for (auto& [tag, value] : event.values) scalars.push_back({std::move(tag), event.step, event.wall_time, value});
    for (auto& image : event.images) {
      image.step = event.step;
      events.images.push_back(std::move(image));
    }
    for (auto& tensor : event.tensors) {
      tensor.step = event.step;
      events.tensors.push_back(std::move(tensor));
    }
    offset += kTfRecordHeaderBytes + length + kTfRecordFooterBytes;
  }
  if (offset == 0)
    throw std::runtime_error("TensorBoard event file " + file.string() + " is empty (no file_version event)");
  return events;
}

}  // namespace detr
