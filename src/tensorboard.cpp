#include "src/tensorboard.h"

#include "util/crc32c.h"

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

namespace detr {

namespace {

using namespace tensorboard_format;
constexpr double kFlushPeriodSeconds = 1.0;  // add_scalar flushes at most this often

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- encoding (little-endian regardless of host) ----

void put_fixed(std::string& out, uint64_t v, size_t n_bytes) {
  for (size_t i = 0; i < n_bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
  out += static_cast<char>(v);
}

void put_key(std::string& out, uint32_t field, Wire wire) { put_varint(out, (field << 3) | wire); }

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string encode_scalar_summary(const std::string& tag, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  std::string v;
  put_bytes(v, kTag, tag);
  put_key(v, kSimpleValue, kFixed32);  // oneof member: written even when 0
  put_fixed(v, bits, 4);
  std::string summary;
  put_bytes(summary, kValue, v);
  return summary;
}

std::string encode_image_summary(const std::string& tag, std::string_view encoded, int height, int width) {
  std::string image;
  put_key(image, kHeight, kVarint);
  put_varint(image, static_cast<uint64_t>(height));
  put_key(image, kWidth, kVarint);
  put_varint(image, static_cast<uint64_t>(width));
  put_key(image, kColorspace, kVarint);
  put_varint(image, 3);  // RGB
  put_bytes(image, kEncodedImage, encoded);
  std::string v;
  put_bytes(v, kTag, tag);
  put_bytes(v, kImage, image);
  std::string summary;
  put_bytes(summary, kValue, v);
  return summary;
}

// A PR curve's Value: the pr_curves plugin's metadata and the [6, N] float tensor.
std::string encode_pr_curve_summary(const std::string& tag, const std::array<std::vector<float>, 6>& rows) {
  const size_t n = rows[0].size();
  std::string plugin_content;  // PrCurvePluginData{version 0 (default, omitted), num_thresholds}
  put_key(plugin_content, 2, kVarint);
  put_varint(plugin_content, n);
  std::string plugin_data;
  put_bytes(plugin_data, kPluginName, kPrCurvesPlugin);
  put_bytes(plugin_data, kPluginContent, plugin_content);
  std::string metadata;
  put_bytes(metadata, kPluginData, plugin_data);
  std::string shape;
  for (const uint64_t size : {uint64_t{6}, static_cast<uint64_t>(n)}) {
    std::string dim;
    put_key(dim, kDimSize, kVarint);
    put_varint(dim, size);
    put_bytes(shape, kDim, dim);
  }
  std::string floats;
  for (const auto& row : rows)
    for (const float v : row) {
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      put_fixed(floats, bits, 4);
    }
  std::string tensor;
  put_key(tensor, kDtype, kVarint);
  put_varint(tensor, kDtFloat);
  put_bytes(tensor, kTensorShape, shape);
  put_bytes(tensor, kFloatVal, floats);  // packed
  std::string v;
  put_bytes(v, kTag, tag);
  put_bytes(v, kMetadata, metadata);
  put_bytes(v, kTensor, tensor);
  std::string summary;
  put_bytes(summary, kValue, v);
  return summary;
}

// Event with exactly one of file_version / summary set. step 0 is omitted (proto3 default).
std::string encode_event(double wall_time, int64_t step, std::string_view file_version,
                         std::string_view summary) {
  uint64_t bits;
  std::memcpy(&bits, &wall_time, sizeof bits);
  std::string event;
  put_key(event, kWallTime, kFixed64);
  put_fixed(event, bits, 8);
  if (step != 0) {
    put_key(event, kStep, kVarint);
    put_varint(event, static_cast<uint64_t>(step));  // int64: two's complement, 10 bytes if < 0
  }
  if (!file_version.empty()) put_bytes(event, kFileVersionField, file_version);
  if (!summary.empty()) put_bytes(event, kSummary, summary);
  return event;
}

std::string frame_record(const std::string& data) {
  std::string record;
  record.reserve(kHeaderBytes + data.size() + kFooterBytes);
  put_fixed(record, data.size(), 8);
  put_fixed(record, util::masked_crc32c(record.data(), 8), 4);
  record += data;
  put_fixed(record, util::masked_crc32c(data.data(), data.size()), 4);
  return record;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string name(buf);
  for (char& c : name)
    if (c == '/') c = '_';
  return name;
}

// Opens <dir>/events.out.tfevents.<%010lld secs>.<host>, adding .1, .2, ... if that name is taken
// (two writers started within the same second) so an existing file is never truncated.
std::FILE* open_new_event_file(const std::filesystem::path& dir, std::filesystem::path& path) {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%010lld", static_cast<long long>(unix_now()));
  const std::string base = std::string("events.out.tfevents.") + secs + "." + hostname();
  for (int n = 0; n < 1000; ++n) {
    path = dir / (n == 0 ? base : base + "." + std::to_string(n));
    if (std::FILE* f = std::fopen(path.c_str(), "wbx")) return f;  // "x": fail if it exists
    if (errno != EEXIST)
      throw std::runtime_error("TensorBoardWriter: cannot create event file " + path.string() +
                               ": " + std::strerror(errno));
  }
  throw std::runtime_error("TensorBoardWriter: too many event files named " + (dir / base).string() +
                           ".*");
}

}  // namespace

// ---- TensorBoardWriter ----

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec || !std::filesystem::is_directory(log_dir))
    throw std::runtime_error("TensorBoardWriter: cannot create log directory " + log_dir.string() +
                             (ec ? ": " + ec.message() : ": not a directory"));
  file_.reset(open_new_event_file(log_dir, path_));
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(encode_event(unix_now(), 0, kFileVersion, {}));
  flush_locked();
}

TensorBoardWriter::~TensorBoardWriter() = default;  // FileCloser: fclose flushes

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step,
                                   double wall_time) {
  const double now = unix_now();
  const std::string event = encode_event(wall_time == 0 ? now : wall_time, step, {},
                                         encode_scalar_summary(tag, static_cast<float>(value)));
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::add_image(const std::string& tag, std::string_view encoded, int height, int width,
                                  int64_t step, double wall_time) {
  const double now = unix_now();
  const std::string event =
      encode_event(wall_time == 0 ? now : wall_time, step, {}, encode_image_summary(tag, encoded, height, width));
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::add_pr_curve(const std::string& tag, const std::array<std::vector<float>, 6>& rows,
                                     int64_t step, double wall_time) {
  for (const auto& row : rows)
    if (row.size() != rows[0].size() || row.size() < 2)
      throw std::invalid_argument("add_pr_curve " + tag + ": six rows of one length >= 2 are needed");
  const double now = unix_now();
  const std::string event = encode_event(wall_time == 0 ? now : wall_time, step, {}, encode_pr_curve_summary(tag, rows));
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_locked();
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = frame_record(event);
  if (std::fwrite(record.data(), 1, record.size(), file_.get()) != record.size()) fail_locked("write");
}

void TensorBoardWriter::flush_locked() {
  if (std::fflush(file_.get()) != 0) fail_locked("write");
  durable_ = std::ftell(file_.get());
  last_flush_ = unix_now();
}

// A failed write (a full disk) may have left part of a record: the file is cut back to its last whole
// record, so readers never meet a torn one.
void TensorBoardWriter::fail_locked(const char* what) {
  const int err = errno ? errno : EIO;
  __fpurge(file_.get());  // drop the buffered rest of the torn record
  if (::ftruncate(fileno(file_.get()), durable_) == 0) std::fseek(file_.get(), durable_, SEEK_SET);
  std::clearerr(file_.get());
  throw std::runtime_error(path_.string() + ": cannot " + what + " TensorBoard events: " + std::strerror(err));
}

// ---- reader ----

}  // namespace detr
