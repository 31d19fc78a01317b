// TensorBoard Event messages (proto/event.proto, summary.proto, tensor.proto, pr_curve.proto),
// serialized by protobuf: the data of one TFRecord record each (util/tfrecord_framing.h).
// Plain C++ in, bytes out, so that no protobuf header reaches the rest of the library.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace detr::tensorboard {

constexpr const char* kFileVersion = "brain.Event:2";  // as TensorFlow's EventsWriter writes
constexpr const char* kPrCurvesPlugin = "pr_curves";

// Event{wall_time, file_version}: a file's first event.
std::string file_version_event(double wall_time);
// Event{wall_time, step, summary{value{tag, simple_value}}} (step 0 is omitted, proto3's default).
std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
// Event{..., summary{value{tag, image{height, width, colorspace 3 (RGB), encoded_image_string}}}}.
std::string image_event(
    double wall_time, int64_t step, const std::string& tag, std::string_view encoded, int height, int width);
// Event{..., summary{value{tag, tensor, metadata}}}: the pr_curves plugin's metadata
// (PrCurvePluginData{version 0, num_thresholds N}) and a DT_FLOAT tensor of shape [6, N], rows TP, FP,
// TN, FN, precision, recall (each of N values; the caller checks they agree).
std::string pr_curve_event(double wall_time,
                           int64_t step,
                           const std::string& tag,
                           const std::array<std::vector<float>, 6>& rows);

}  // namespace detr::tensorboard
