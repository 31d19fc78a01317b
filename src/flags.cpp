#include "src/flags.h"

#include <cmath>
#include <sstream>

namespace detr::flag_codec {

void parse(const std::string& s, int64_t& v) {
  size_t used = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) throw std::invalid_argument("'" + s + "' is not an integer");
}

void parse(const std::string& s, uint64_t& v) {
  size_t used = 0;
  try {
    if (s.find('-') == std::string::npos) v = std::stoull(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) throw std::invalid_argument("'" + s + "' is not a non-negative integer");
}

void parse(const std::string& s, double& v) {
  size_t used = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || !std::isfinite(v))
    throw std::invalid_argument("'" + s + "' is not a finite number");
}

void parse(const std::string& s, std::string& v) { v = s; }

void parse(const std::string& s, std::vector<int64_t>& v) {
  v.clear();
  if (s.empty()) return;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int64_t x = 0;
    try {
      parse(item, x);
    } catch (const std::invalid_argument&) {
      x = 0;
    }
    if (x <= 0) throw std::invalid_argument("'" + item + "' is not a positive integer (expected e.g. 480,512,544)");
    v.push_back(x);
  }
  if (v.empty()) throw std::invalid_argument("needs at least one size");
}

void parse(const std::string& s, Precision& v) { v = parse_precision(s); }
void parse(const std::string& s, models::ConvAlgorithm& v) { v = models::parse_conv_algorithm(s); }
void parse(const std::string& s, models::PositionEmbedding& v) { v = models::parse_position_embedding(s); }
void parse(const std::string& s, DistBackend& v) { v = parse_dist_backend(s); }
void parse(const std::string& s, std::optional<torch::Device>& v) { v = parse_device(s); }
void parse(const std::string& s, std::optional<datasets::formats::DatasetFormat>& v) {
  if (s == "auto") {
    v.reset();
    return;
  }
  v = datasets::formats::parse_format_name(s);
  if (!v)
    throw std::invalid_argument("'" + s +
                                "' is not one of auto, coco, yolo, ultralytics, voc, labelme, mot, tfrecord, cvat, "
                                "datumaro (or a CVAT/Onepanel format name such as cvat_yolo)");
}

std::string text(int64_t v) { return std::to_string(v); }
std::string text(uint64_t v) { return std::to_string(v); }
std::string text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
std::string text(const std::string& v) { return v; }
std::string text(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}
std::string text(Precision v) { return to_string(v); }
std::string text(models::ConvAlgorithm v) { return models::to_string(v); }
std::string text(models::PositionEmbedding v) { return models::to_string(v); }
std::string text(DistBackend v) { return to_string(v); }
std::string text(const std::optional<torch::Device>& v) { return v ? v->str() : "auto"; }
void parse(const std::string& s, datasets::IouType& v) { v = datasets::parse_iou_type(s); }
void parse(const std::string& s, datasets::CrowdPolicy& v) { v = datasets::parse_crowd_policy(s); }
std::string text(datasets::CrowdPolicy v) { return datasets::to_string(v); }
std::string text(datasets::IouType v) { return datasets::iou_type_name(v); }
std::string text(const std::optional<datasets::formats::DatasetFormat>& v) {
  return v ? datasets::formats::format_name(*v) : "auto";
}

}  // namespace detr::flag_codec

namespace detr {

namespace {

// A table cell: '|' escaped, code spans for flags and defaults.
std::string cell(const std::string& text, bool code) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return code && !out.empty() ? "`" + out + "`" : out;
}

}  // namespace

std::string markdown_table(const std::string& program,
                           const std::string& description,
                           const std::vector<std::vector<std::string>>& rows) {
  std::string s = "## " + program + "\n\n" + description + "\n\n| flag | default | help |\n|---|---|---|\n";
  for (const auto& row : rows)
    s += "| " + cell(row.at(0), true) + " | " + cell(row.at(1), true) + " | " + cell(row.at(2), false) + " |\n";
  return s;
}

}  // namespace detr
