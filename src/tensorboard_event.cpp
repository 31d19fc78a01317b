#include "src/tensorboard_event.h"

#include "proto/event.pb.h"
#include "proto/pr_curve.pb.h"

namespace detr::tensorboard {

namespace {

pb::Event event_at(double wall_time, int64_t step) {
  pb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  return event;
}

pb::Summary::Value* new_value(pb::Event& event, const std::string& tag) {
  pb::Summary::Value* value = event.mutable_summary()->add_value();
  value->set_tag(tag);
  return value;
}

}  // namespace

std::string file_version_event(double wall_time) {
  pb::Event event = event_at(wall_time, 0);
  event.set_file_version(kFileVersion);
  return event.SerializeAsString();
}

std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  pb::Event event = event_at(wall_time, step);
  new_value(event, tag)->set_simple_value(value);  // a oneof member: written even when 0
  return event.SerializeAsString();
}

std::string image_event(
    double wall_time, int64_t step, const std::string& tag, std::string_view encoded, int height, int width) {
  pb::Event event = event_at(wall_time, step);
  pb::Summary::Image* image = new_value(event, tag)->mutable_image();
  image->set_height(height);
  image->set_width(width);
  image->set_colorspace(3);  // RGB
  image->set_encoded_image_string(encoded.data(), encoded.size());
  return event.SerializeAsString();
}

std::string pr_curve_event(double wall_time,
                           int64_t step,
                           const std::string& tag,
                           const std::array<std::vector<float>, 6>& rows) {
  pb::Event event = event_at(wall_time, step);
  pb::Summary::Value* value = new_value(event, tag);
  pb::PrCurvePluginData plugin;
  plugin.set_num_thresholds(static_cast<uint32_t>(rows[0].size()));
  pb::SummaryMetadata::PluginData* plugin_data = value->mutable_metadata()->mutable_plugin_data();
  plugin_data->set_plugin_name(kPrCurvesPlugin);
  plugin_data->set_content(plugin.SerializeAsString());
  pb::TensorProto* tensor = value->mutable_tensor();
  tensor->set_dtype(pb::DT_FLOAT);
  tensor->mutable_tensor_shape()->add_dim()->set_size(6);
  tensor->mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(rows[0].size()));
  for (const auto& row : rows) tensor->mutable_float_val()->Add(row.begin(), row.end());
  return event.SerializeAsString();
}

}  // namespace detr::tensorboard
