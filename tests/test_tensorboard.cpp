#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "src/tensorboard.h"
#include "src/tools/tensorboard_reader.h"
#include "util/crc32c.h"
#include "util/tfrecord_framing.h"

namespace fs = std::filesystem;
using detr::read_tensorboard_scalars;
using detr::TensorBoardScalar;
using detr::TensorBoardWriter;
using detr::util::crc32c;

namespace {

// Byte-exact file written by TeamHG-Memex/tensorboard_logger (real protobuf serialisation), from its
// tests/test_tensorboard_logger.py::test_serialization: wall_time 256.5 everywhere, then
// log_value('v/1', 1.5, step=1) and log_value('v/22', 16.0, step=2).
const std::string kReferenceFile = std::string(
    "\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\"\t\x00\x00\x00\x00\x00\x08p@\x1a\rbrain.Event:2\xbc\x98!+"
    "\x19\x00\x00\x00\x00\x00\x00\x00\x8b\xf1\x08(\t\x00\x00\x00\x00\x00\x08p@\x10\x01*\x0c\n\n\n\x03v/1"
    "\x15\x00\x00\xc0?,\xec\xc0\x87"
    "\x1a\x00\x00\x00\x00\x00\x00\x00\x12\x9b\xd8-\t\x00\x00\x00\x00\x00\x08p@\x10\x02*\r\n\x0b\n\x04v/22"
    "\x15\x00\x00\x80"
    "A\x8f\xa3\xb6\x88",
    40 + 41 + 42);
// A file_version record written by TensorFlow itself (tensorflow event_file_loader_test MOCK_RECORDS).
const std::string kTensorFlowRecord = std::string(
    "\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\"\t\x00\x00\x00'\xe6\xb3\xd5"
    "A\x1a\rbrain.Event:2"
    "jM\x0b\x15",
    40);
constexpr size_t kFirstRecordBytes = 40;  // 12 header + 24 Event{wall_time, file_version} + 4 CRC

class TensorBoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("detr_tb_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void write_bytes(const fs::path& file, const std::string& bytes) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  }
  // The error message of read_tensorboard_scalars(file), or "" when it does not throw.
  static std::string read_error(const fs::path& file) {
    try {
      read_tensorboard_scalars(file);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  // A file with the first record and 3 equal-size scalar records (steps 1..3, flushed).
  fs::path write_small_file() {
    TensorBoardWriter w(dir_);
    for (int step = 1; step <= 3; ++step) w.add_scalar("loss", 1.0 / step, step, 1e9 + step);
    w.flush();
    return w.path();
  }

  fs::path dir_;
};

}  // namespace

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) appendix B.4.
  std::vector<unsigned char> buf(32, 0);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x8A9136AAu);
  std::fill(buf.begin(), buf.end(), 0xFF);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x62A8AB43u);
  for (size_t i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x46DD794Eu);
  for (size_t i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x113FDB5Cu);
}

TEST_F(TensorBoardTest, ReadsReferenceFileFromTensorboardLogger) {
  fs::create_directories(dir_);
  write_bytes(dir_ / "events.out.tfevents.ref", kReferenceFile);
  const auto scalars = read_tensorboard_scalars(dir_ / "events.out.tfevents.ref");
  ASSERT_EQ(scalars.size(), 2u);
  EXPECT_EQ(scalars[0].tag, "v/1");
  EXPECT_EQ(scalars[0].step, 1);
  EXPECT_EQ(scalars[0].wall_time, 256.5);
  EXPECT_EQ(scalars[0].value, 1.5f);
  EXPECT_EQ(scalars[1].tag, "v/22");
  EXPECT_EQ(scalars[1].step, 2);
  EXPECT_EQ(scalars[1].value, 16.0f);

  write_bytes(dir_ / "events.out.tfevents.tf", kTensorFlowRecord);
  EXPECT_TRUE(read_tensorboard_scalars(dir_ / "events.out.tfevents.tf").empty());
}

TEST_F(TensorBoardTest, ScalarRecordsMatchReferenceBytes) {
  std::string written;
  {
    TensorBoardWriter w(dir_);
    w.add_scalar("v/1", 1.5, 1, 256.5);
    w.add_scalar("v/22", 16.0, 2, 256.5);
    w.flush();
    written = read_bytes(w.path());
  }
  ASSERT_EQ(written.size(), kReferenceFile.size());
  // The first record differs only in wall_time (now instead of 256.5): same length, same header CRC.
  EXPECT_EQ(written.substr(0, 13), kReferenceFile.substr(0, 13));
  EXPECT_EQ(written.substr(21, 15), kReferenceFile.substr(21, 15));  // 0x1a 0x0d "brain.Event:2"
  EXPECT_EQ(written.substr(kFirstRecordBytes), kReferenceFile.substr(kFirstRecordBytes));
}

TEST_F(TensorBoardTest, FirstEventHasFileVersionAndCurrentWallTime) {
  const double before = static_cast<double>(std::time(nullptr));
  fs::path path;
  {
    TensorBoardWriter w(dir_);
    path = w.path();
    // Flushed by the constructor: visible before any scalar or flush().
    const std::string bytes = read_bytes(path);
    ASSERT_EQ(bytes.size(), kFirstRecordBytes);
    EXPECT_NE(bytes.find("brain.Event:2"), std::string::npos);
    double wall_time;
    std::memcpy(&wall_time, bytes.data() + 13, sizeof wall_time);  // after tag byte 0x09
    EXPECT_GE(wall_time, before);
    EXPECT_LE(wall_time, static_cast<double>(std::time(nullptr)) + 1);
  }
  EXPECT_TRUE(read_tensorboard_scalars(path).empty());
}

TEST_F(TensorBoardTest, RoundTripManyScalars) {
  const float big = std::numeric_limits<float>::max();
  const std::vector<double> values = {0.0, -0.0,      1.0, -3.25, 1e-8, -1e-8, 1e20, -1e30, big, 1e-40 /* subnormal */,
                                      0.1, 123456.789};
  const std::vector<int64_t> steps = {
      0, 1, 2, 127, 128, 300, 1 << 20, int64_t(1) << 40, std::numeric_limits<int64_t>::max(), -1};
  const std::vector<std::string> tags = {"loss", "train/loss_giou", "lr", "ünïcode/π", "a b"};
  std::vector<TensorBoardScalar> expected;
  fs::path path;
  {
    TensorBoardWriter w(dir_ / "nested" / "run1");
    path = w.path();
    double wall_time = 1.7e9 + 0.125;
    for (size_t i = 0; i < 500; ++i) {
      const auto& tag = tags[i % tags.size()];
      const double value = values[i % values.size()] * (i < values.size() ? 1 : 1 + static_cast<double>(i) * 1e-3);
      const int64_t step = steps[i % steps.size()];
      w.add_scalar(tag, value, step, wall_time);
      expected.push_back({tag, step, wall_time, static_cast<float>(value)});
      wall_time += 0.5;
    }
    w.add_scalar(std::string(300, 'x'), 2.0, 7, 5.0);  // tag longer than a 1-byte varint length
    expected.push_back({std::string(300, 'x'), 7, 5.0, 2.0f});
  }  // destructor flushes
  const auto got = read_tensorboard_scalars(path);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("scalar " + std::to_string(i));
    EXPECT_EQ(got[i].tag, expected[i].tag);
    EXPECT_EQ(got[i].step, expected[i].step);
    EXPECT_EQ(got[i].wall_time, expected[i].wall_time);
    EXPECT_EQ(got[i].value, expected[i].value);
    EXPECT_EQ(std::signbit(got[i].value), std::signbit(expected[i].value));
  }
}

TEST_F(TensorBoardTest, NonFiniteValuesRoundTrip) {
  fs::path path;
  {
    TensorBoardWriter w(dir_);
    path = w.path();
    w.add_scalar("nan", std::nan(""), 1, 1.0);
    w.add_scalar("inf", std::numeric_limits<double>::infinity(), 2, 1.0);
    w.add_scalar("overflow", 1e300, 3, 1.0);  // float(1e300) = inf
  }
  const auto got = read_tensorboard_scalars(path);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(std::isnan(got[0].value));
  EXPECT_TRUE(std::isinf(got[1].value) && got[1].value > 0);
  EXPECT_TRUE(std::isinf(got[2].value));
}

TEST_F(TensorBoardTest, DefaultWallTimeIsNow) {
  // The same clock as the writer's (std::time can read a coarse clock that lags on a loaded machine).
  const auto now = [] {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  const double before = now();
  TensorBoardWriter w(dir_);
  w.add_scalar("loss", 0.5, 3);
  w.flush();
  const double after = now();
  const auto got = read_tensorboard_scalars(w.path());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_GE(got[0].wall_time, before);
  EXPECT_LE(got[0].wall_time, after);
}

TEST_F(TensorBoardTest, FlushPublishesWhileWriterIsOpen) {
  TensorBoardWriter w(dir_);
  for (int i = 0; i < 5; ++i) w.add_scalar("x", i, i, 1.0);
  w.flush();
  EXPECT_EQ(read_tensorboard_scalars(w.path()).size(), 5u);
  w.add_scalar("x", 5, 5, 1.0);
  w.flush();
  EXPECT_EQ(read_tensorboard_scalars(w.path()).size(), 6u);
}

TEST_F(TensorBoardTest, FileNameAndLocation) {
  TensorBoardWriter w(dir_ / "a" / "b");
  EXPECT_EQ(w.path().parent_path(), dir_ / "a" / "b");
  EXPECT_TRUE(fs::is_regular_file(w.path()));
  const std::string name = w.path().filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(events\.out\.tfevents\.\d{10}\.[^/]+)"))) << name;
  // A second writer in the same directory (likely the same second) never clobbers the first.
  TensorBoardWriter w2(dir_ / "a" / "b");
  EXPECT_NE(w2.path(), w.path());
  EXPECT_NE(w2.path().filename().string().find("tfevents"), std::string::npos);
  EXPECT_EQ(fs::file_size(w.path()), kFirstRecordBytes);
}

TEST_F(TensorBoardTest, ConstructorThrowsNamingThePath) {
  fs::create_directories(dir_);
  write_bytes(dir_ / "not_a_dir", "x");
  try {
    TensorBoardWriter w(dir_ / "not_a_dir" / "run");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "not_a_dir" / "run").string()), std::string::npos) << e.what();
  }
}

TEST_F(TensorBoardTest, CorruptDataByteIsDetected) {
  const fs::path path = write_small_file();
  std::string bytes = read_bytes(path);
  const size_t second = kFirstRecordBytes;  // the first scalar record
  bytes[second + 12 + 5] ^= 0x01;           // inside its Event bytes
  write_bytes(path, bytes);
  const std::string err = read_error(path);
  EXPECT_NE(err.find(path.string()), std::string::npos) << err;
  EXPECT_NE(err.find("record 1 at offset 40"), std::string::npos) << err;
  EXPECT_NE(err.find("data CRC mismatch"), std::string::npos) << err;
}

TEST_F(TensorBoardTest, CorruptLengthIsDetected) {
  const fs::path path = write_small_file();
  std::string bytes = read_bytes(path);
  bytes[kFirstRecordBytes + 1] ^= 0x40;  // length of record 1 becomes huge
  write_bytes(path, bytes);
  const std::string err = read_error(path);
  EXPECT_NE(err.find("record 1 at offset 40"), std::string::npos) << err;
  EXPECT_NE(err.find("length CRC mismatch"), std::string::npos) << err;
}

TEST_F(TensorBoardTest, CorruptCrcIsDetected) {
  const fs::path path = write_small_file();
  std::string bytes = read_bytes(path);
  bytes[bytes.size() - 1] = static_cast<char>(bytes.back() ^ 0x80);  // footer CRC of the last record
  write_bytes(path, bytes);
  EXPECT_NE(read_error(path).find("data CRC mismatch"), std::string::npos) << read_error(path);
}

TEST_F(TensorBoardTest, TruncatedLastRecordIsReportedAsSuch) {
  const fs::path path = write_small_file();
  const std::string bytes = read_bytes(path);
  const size_t full = bytes.size();
  const size_t last_start = full - (full - kFirstRecordBytes) / 3;  // 3 equal-size scalar records
  // Cut inside the Event bytes, inside the footer CRC, and inside the 12-byte header.
  for (size_t cut : {full - 10, full - 1, last_start + 5}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_bytes(path, bytes.substr(0, cut));
    const std::string err = read_error(path);
    EXPECT_NE(err.find(path.string()), std::string::npos) << err;
    EXPECT_NE(err.find("truncated last record"), std::string::npos) << err;
    EXPECT_NE(err.find("offset " + std::to_string(last_start)), std::string::npos) << err;
  }
  write_bytes(path, bytes.substr(0, last_start));  // cut exactly between records: valid
  EXPECT_EQ(read_tensorboard_scalars(path).size(), 2u);
}

TEST_F(TensorBoardTest, EmptyFileAndWrongFileVersionAreRejected) {
  fs::create_directories(dir_);
  write_bytes(dir_ / "empty", "");
  EXPECT_NE(read_error(dir_ / "empty").find("empty"), std::string::npos);
  EXPECT_NE(read_error(dir_ / "missing").find("cannot open"), std::string::npos);

  // Same first record as the reference but "brain.Event:1", with valid CRCs.
  std::string data = kReferenceFile.substr(12, 24);
  data[data.size() - 1] = '1';
  const uint32_t c = crc32c(data.data(), data.size());
  const uint32_t masked = ((c >> 15) | (c << 17)) + 0xa282ead8u;
  std::string record = kReferenceFile.substr(0, 12) + data;
  for (int i = 0; i < 4; ++i) record += static_cast<char>((masked >> (8 * i)) & 0xff);
  write_bytes(dir_ / "v1", record);
  EXPECT_NE(read_error(dir_ / "v1").find("file_version is \"brain.Event:1\""), std::string::npos)
      << read_error(dir_ / "v1");

  // A file whose first record is a scalar event (no file_version).
  write_bytes(dir_ / "noversion", kReferenceFile.substr(kFirstRecordBytes));
  EXPECT_NE(read_error(dir_ / "noversion").find("no file_version"), std::string::npos);
}

// Optional: cross-check with TensorBoard's own reader when /usr/bin/python3 has it installed.
TEST_F(TensorBoardTest, PythonTensorboardCrossCheck) {
  if (std::system("/usr/bin/python3 -c 'import tensorboard' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 `tensorboard` package not importable";
  {
    TensorBoardWriter w(dir_);
    w.add_scalar("loss", 0.25, 10, 1.5e9);
    w.add_scalar("loss", -2.0, 20, 1.5e9 + 1);
  }
  const std::string script =
      "import sys\n"
      "from tensorboard.backend.event_processing import event_accumulator as ea\n"
      "acc = ea.EventAccumulator(sys.argv[1]); acc.Reload()\n"
      "got = [(e.step, e.value) for e in acc.Scalars('loss')]\n"
      "sys.exit(0 if got == [(10, 0.25), (20, -2.0)] else 1)\n";
  write_bytes(dir_ / "check.py", script);
  const std::string cmd = "/usr/bin/python3 " + (dir_ / "check.py").string() + " " + dir_.string() + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST_F(TensorBoardTest, PrCurveRoundTripsWithPluginAndShape) {
  std::array<std::vector<float>, 6> rows;
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 6; ++k) rows[k].push_back(static_cast<float>(k * 10 + i) + 0.25f);
  fs::path path;
  {
    TensorBoardWriter w(dir_);
    path = w.path();
    w.add_scalar("loss", 1.0, 1, 1.0);
    w.add_pr_curve("pr_curves/AP50/all", rows, 3, 2.0);
    EXPECT_THROW(w.add_pr_curve("bad", {{{1, 2}, {1, 2}, {1, 2}, {1, 2}, {1, 2}, {1}}}, 3), std::invalid_argument);
  }
  const auto events = detr::read_tensorboard_events(path);
  ASSERT_EQ(events.scalars.size(), 1u);
  ASSERT_EQ(events.tensors.size(), 1u);
  const auto& t = events.tensors[0];
  EXPECT_EQ(t.tag, "pr_curves/AP50/all");
  EXPECT_EQ(t.plugin, "pr_curves");
  EXPECT_EQ(t.step, 3);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{6, 5}));
  ASSERT_EQ(t.values.size(), 30u);
  for (int k = 0; k < 6; ++k)
    for (int i = 0; i < 5; ++i) EXPECT_EQ(t.values[k * 5 + i], rows[k][i]) << k << "," << i;
}

// Event bytes that are not a protobuf Event (behind valid CRCs): one line naming the file and record,
// whether truncated, a group that never ends, or groups nested 100000 deep (the recursion limit).
TEST_F(TensorBoardTest, MalformedEventIsOneLineNamingTheRecord) {
  fs::create_directories(dir_);
  const std::string first = kReferenceFile.substr(0, kFirstRecordBytes);
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += '\x4b';                   // field 9, start group
  for (int i = 0; i < 100000; ++i) deep += '\x4c';                   // field 9, end group
  const std::string truncated = std::string("\x2a\x10\x0a\x02", 4);  // summary of 16 bytes, 2 there
  for (const std::string& data : {truncated, std::string("\x4b", 1), deep}) {
    write_bytes(dir_ / "bad", first + detr::util::frame_tfrecord(data));
    const std::string err = read_error(dir_ / "bad");
    EXPECT_NE(err.find((dir_ / "bad").string() + ": record 1 at offset 40: malformed Event"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  // Declared values are counted before protobuf parses them: a 20 MB Event of 10 million empty summary
  // values (about 5 GB once parsed) is refused in one line that names the counts; one of a thousand
  // is read.
  const auto summary_of = [](size_t n) {
    std::string values;
    for (size_t i = 0; i < n; ++i) values += std::string("\x0a\x00", 2);  // Summary.value, empty
    std::string len;                                                      // the varint length of Event.summary
    for (size_t v = values.size(); v >= 0x80; v >>= 7) len += static_cast<char>((v & 0x7f) | 0x80);
    len += static_cast<char>(values.size() >> (7 * len.size()));
    return "\x2a" + len + values;
  };
  write_bytes(dir_ / "bad", first + detr::util::frame_tfrecord(summary_of(10'000'000)));
  const std::string err = read_error(dir_ / "bad");
  EXPECT_NE(err.find("declares 10000000 summary values"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  write_bytes(dir_ / "bad", first + detr::util::frame_tfrecord(summary_of(1000)));
  EXPECT_EQ(read_error(dir_ / "bad"), "");
  // A PR curve tensor that is not float32 is named as such.
  const std::string int_tensor = std::string("\x2a\x06\x0a\x04\x42\x02\x08\x03", 8);  // dtype 3
  write_bytes(dir_ / "bad", first + detr::util::frame_tfrecord(int_tensor));
  EXPECT_NE(read_error(dir_ / "bad").find("not DT_FLOAT"), std::string::npos) << read_error(dir_ / "bad");
}
