#include "src/tensorboard.h"

#include <stdio_ext.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "src/tensorboard_event.h"
#include "util/tfrecord_framing.h"

namespace detr {

namespace {

constexpr double kFlushPeriodSeconds = 1.0;  // add_scalar flushes at most this often

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

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
      throw std::runtime_error("TensorBoardWriter: cannot create event file " + path.string() + ": " +
                               std::strerror(errno));
  }
  throw std::runtime_error("TensorBoardWriter: too many event files named " + (dir / base).string() + ".*");
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
  write_record(tensorboard::file_version_event(unix_now()));
  flush_locked();
}

TensorBoardWriter::~TensorBoardWriter() = default;  // FileCloser: fclose flushes

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  const double now = unix_now();
  const std::string event =
      tensorboard::scalar_event(wall_time == 0 ? now : wall_time, step, tag, static_cast<float>(value));
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::add_image(
    const std::string& tag, std::string_view encoded, int height, int width, int64_t step, double wall_time) {
  const double now = unix_now();
  const std::string event =
      tensorboard::image_event(wall_time == 0 ? now : wall_time, step, tag, encoded, height, width);
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::add_pr_curve(const std::string& tag,
                                     const std::array<std::vector<float>, 6>& rows,
                                     int64_t step,
                                     double wall_time) {
  for (const auto& row : rows)
    if (row.size() != rows[0].size() || row.size() < 2)
      throw std::invalid_argument("add_pr_curve " + tag + ": six rows of one length >= 2 are needed");
  const double now = unix_now();
  const std::string event = tensorboard::pr_curve_event(wall_time == 0 ? now : wall_time, step, tag, rows);
  std::lock_guard<std::mutex> lock(mutex_);
  write_record(event);
  if (now - last_flush_ >= kFlushPeriodSeconds) flush_locked();
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_locked();
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = util::frame_tfrecord(event);
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

}  // namespace detr
