// TensorBoard event files (scalars, images, PR curves) without TensorFlow or protobuf.
//
// File: <log_dir>/events.out.tfevents.<10-digit unix seconds>.<hostname>[.N] (TensorBoard globs
// *tfevents*; .N is added only when that name already exists). It is a TFRecord stream:
//   uint64 length (LE) | uint32 masked_crc32c(8 length bytes) | Event bytes | uint32 masked_crc32c(Event)
// with mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. The Event is hand-encoded protobuf:
//   Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5 Summary}
//   Summary{value=1 repeated Value}, Value{tag=1 string, simple_value=2 float, image=4 Image},
//   Image{height=1 int32, width=2 int32, colorspace=3 int32, encoded_image_string=4 bytes};
//   a PR curve: Value{tag, metadata=9 SummaryMetadata, tensor=8 TensorProto}, SummaryMetadata{
//   plugin_data=1 PluginData{plugin_name=1 "pr_curves", content=2 PrCurvePluginData{version=1 0,
//   num_thresholds=2}}}, TensorProto{dtype=1 DT_FLOAT (1), tensor_shape=2 TensorShapeProto{dim=2
//   Dim{size=1}}, float_val=5 packed} of shape [6, num_thresholds]: TP, FP, TN, FN, precision, recall.
// The first event carries file_version "brain.Event:2" (as TF's EventsWriter writes).
#pragma once
#include <array>
#include <cstddef>
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
  void add_image(const std::string& tag, std::string_view encoded, int height, int width, int64_t step,
                 double wall_time = 0);
  // Appends a PR curve for TensorBoard's PR Curves tab: rows TP, FP, TN, FN, precision, recall (each
  // of one length, at least 2), as the pr_curves plugin stores them. Flushed as add_scalar.
  void add_pr_curve(const std::string& tag, const std::array<std::vector<float>, 6>& rows, int64_t step,
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

// The event file format the writer and the reader share.
namespace tensorboard_format {
constexpr const char* kFileVersion = "brain.Event:2";
constexpr size_t kHeaderBytes = 12;  // uint64 length + uint32 masked CRC of it
constexpr size_t kFooterBytes = 4;   // uint32 masked CRC of the data
// Protobuf wire types and the field numbers of event.proto / summary.proto that we use.
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
enum EventField : uint32_t { kWallTime = 1, kStep = 2, kFileVersionField = 3, kSummary = 5 };
enum SummaryField : uint32_t { kValue = 1 };
enum ValueField : uint32_t { kTag = 1, kSimpleValue = 2, kImage = 4, kTensor = 8, kMetadata = 9 };
enum MetadataField : uint32_t { kPluginData = 1 };
enum PluginDataField : uint32_t { kPluginName = 1, kPluginContent = 2 };
enum TensorField : uint32_t { kDtype = 1, kTensorShape = 2, kTensorContent = 4, kFloatVal = 5 };
enum ShapeField : uint32_t { kDim = 2 };
enum DimField : uint32_t { kDimSize = 1 };
constexpr uint32_t kDtFloat = 1;
constexpr const char* kPrCurvesPlugin = "pr_curves";
enum ImageField : uint32_t { kHeight = 1, kWidth = 2, kColorspace = 3, kEncodedImage = 4 };
}  // namespace tensorboard_format
}  // namespace detr
