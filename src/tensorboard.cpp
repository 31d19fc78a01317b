#include "src/tensorboard.h"

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

constexpr const char* kFileVersion = "brain.Event:2";
constexpr double kFlushPeriodSeconds = 1.0;  // add_scalar flushes at most this often
constexpr size_t kHeaderBytes = 12;          // uint64 length + uint32 masked CRC of it
constexpr size_t kFooterBytes = 4;           // uint32 masked CRC of the data

// Protobuf wire types and the field numbers of event.proto / summary.proto that we use.
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
enum EventField : uint32_t { kWallTime = 1, kStep = 2, kFileVersionField = 3, kSummary = 5 };
enum SummaryField : uint32_t { kValue = 1 };
enum ValueField : uint32_t { kTag = 1, kSimpleValue = 2 };

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// TFRecord's CRC masking (crc32c.h: "it is problematic to compute the CRC of a string that
// contains embedded CRCs").
uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

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
  put_fixed(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put_fixed(record, masked_crc32c(data.data(), data.size()), 4);
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
};

void parse_value(std::string_view bytes, ParsedEvent& event) {
  ProtoReader r(bytes);
  std::string tag;
  std::optional<float> simple_value;
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
    } else {
      r.skip(wire);  // image, histo, tensor, metadata, ...
    }
  }
  if (simple_value) event.values.emplace_back(std::move(tag), *simple_value);
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

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = kCrc32cTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

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

std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& file) {
  const std::string bytes = read_file_bytes(file);
  std::vector<TensorBoardScalar> scalars;
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
    if (masked_crc32c(record, 8) != load_le(record + 8, 4))
      fail("length CRC mismatch (corrupt length field)");
    const uint64_t length = load_le(record, 8);
    if (left < kHeaderBytes + kFooterBytes || length > left - kHeaderBytes - kFooterBytes)
      fail("truncated last record: needs " + std::to_string(length + kHeaderBytes + kFooterBytes) +
           " bytes, " + std::to_string(left) + " left (writer killed mid-write?)");
    const std::string_view data(record + kHeaderBytes, length);
    if (masked_crc32c(data.data(), data.size()) != load_le(record + kHeaderBytes + length, 4))
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
    offset += kHeaderBytes + length + kFooterBytes;
  }
  if (offset == 0)
    throw std::runtime_error("TensorBoard event file " + file.string() +
                             " is empty (no file_version event)");
  return scalars;
}

}  // namespace detr
