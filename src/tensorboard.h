// TensorBoard event files (scalars, images, PR curves) without TensorFlow.
//
// File: <log_dir>/events.out.tfevents.<10-digit unix seconds>.<hostname>[.N] (TensorBoard globs
// *tfevents*; .N is added only when that name already exists). It is a TFRecord stream
// (util/tfrecord_framing.h) of Event messages, serialized by protobuf from our own minimal copies
// of TensorFlow's and TensorBoard's .proto files (proto/; src/tensorboard_event.h builds them): a
// scalar is Summary.Value.simple_value, an image Summary.Value.image, a PR curve a [6, N] DT_FLOAT
// Summary.Value.tensor (rows TP, FP, TN, FN, precision, recall) with the pr_curves plugin's
// SummaryMetadata. The first event carries file_version "brain.Event:2" (as TF's EventsWriter writes).
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace detr {

class TensorBoardWriter {
 public:
  // Creates `log_dir` (and parents) and a new event file in it, writing and flushing the
  // file_version event. Throws std::runtime_error naming the path when it cannot.
  explicit TensorBoardWriter(const std::filesystem::path& log_dir);
  ~TensorBoardWriter();  // flushes and closes; never throws
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Appends Event{wall_time, step, summary{value{tag, simple_value=float(value)}}}; wall_time 0 means
  // now. Buffered: the file is flushed at most once a second from here, so call flush() to publish
  // the latest scalars at once (e.g. at the end of an epoch). Throws std::runtime_error naming the
  // file on a write error (disk full). Thread-safe.
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = 0);
  // Appends an image summary (TensorBoard's Images tab) of a PNG or JPEG `encoded`, height x width
  // RGB (colorspace 3). Flushed as add_scalar.
  void add_image(
      const std::string& tag, std::string_view encoded, int height, int width, int64_t step, double wall_time = 0);
  // Appends a PR curve for TensorBoard's PR Curves tab: rows TP, FP, TN, FN, precision, recall (each
  // of one length, at least 2), as the pr_curves plugin stores them. Flushed as add_scalar.
  void add_pr_curve(const std::string& tag,
                    const std::array<std::vector<float>, 6>& rows,
                    int64_t step,
                    double wall_time = 0);
  // fflush so a TensorBoard sidecar sees events while training runs.
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  void flush_locked();
  [[noreturn]] void fail_locked(const char* what);

  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::mutex mutex_;
  double last_flush_ = 0;  // unix seconds
  long durable_ = 0;       // file size after the last successful flush: whole records only
};

}  // namespace detr
