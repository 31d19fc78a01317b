#include "src/predict_server.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>

#include "datasets/image_io.h"
#include "util/base64.h"

namespace detr {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

constexpr int kMaxRequestDepth = 64;  // JSON nesting of a request (its id may be any JSON value)

ServeRequest parse_request(const nlohmann::json& j, const ServeOptions& o) {
  ServeRequest r;
  r.id = j.value("id", nlohmann::json());
  r.threshold = o.threshold;
  r.topk = o.topk;
  if (j.contains("threshold")) {
    if (!j["threshold"].is_number() || !(j["threshold"] >= 0 && j["threshold"] <= 1))
      bad("field 'threshold' must be a number in [0, 1], got " + j["threshold"].dump());
    r.threshold = j["threshold"].get<float>();
  }
  for (const auto& [field, flag] :
       {std::pair<const char*, bool*>{"cvat_masks", &r.cvat_masks}, {"polygons", &r.polygons}}) {
    if (!j.contains(field)) continue;
    if (!j[field].is_boolean()) bad(std::string("field '") + field + "' must be true or false, got " + j[field].dump());
    *flag = j[field].get<bool>();
  }
  if (j.contains("topk")) {
    if (!j["topk"].is_number_integer() || j["topk"].get<int64_t>() < 0)
      bad("field 'topk' must be an integer >= 0, got " + j["topk"].dump());
    r.topk = j["topk"].get<int64_t>();
  }
  const bool has_image = j.contains("image"), has_path = j.contains("path");
  if (has_image == has_path) bad("give one of 'image' (base64) and 'path'");
  if (has_path) {
    if (!j["path"].is_string()) bad("field 'path' must be a string");
    r.rgb = datasets::load_image_rgb(j["path"].get<std::string>(), o.max_image_pixels);
    return r;
  }
  if (!j["image"].is_string()) bad("field 'image' must be a base64 string");
  const auto bytes = util::base64_decode(j["image"].get_ref<const std::string&>());
  if (!bytes) bad("field 'image' is not valid base64");
  r.rgb = datasets::decode_image_rgb(*bytes, "field 'image'", o.max_image_pixels);
  return r;
}

// Reads one line of at most `limit` bytes; a longer one is consumed and reported as too long.
bool read_line(std::istream& in, size_t limit, std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  char c;
  bool any = false;
  while (in.get(c)) {
    any = true;
    if (c == '\n') return true;
    if (line.size() < limit)
      line.push_back(c);
    else
      too_long = true;
  }
  return any;
}

// CVAT's serverless mask form: the mask's 0/1 pixels inside its box (rows top to bottom), then the box's
// left, top, right, bottom (inclusive), as CVAT's own segmentation functions return masks.
// `bits`: the mask decoded row-major.
nlohmann::json cvat_mask(const datasets::Rle& rle, const std::vector<uint8_t>& bits) {
  const auto box = datasets::to_bbox(rle);  // x, y, w, h
  std::vector<int> out;
  if (box[2] <= 0 || box[3] <= 0) return out;
  const auto x0 = static_cast<int64_t>(box[0]), y0 = static_cast<int64_t>(box[1]);
  const auto x1 = x0 + static_cast<int64_t>(box[2]) - 1, y1 = y0 + static_cast<int64_t>(box[3]) - 1;
  out.reserve(static_cast<size_t>((x1 - x0 + 1) * (y1 - y0 + 1) + 4));
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x) out.push_back(bits[static_cast<size_t>(y * rle.width + x)]);
  out.insert(out.end(), {static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1), static_cast<int>(y1)});
  return out;
}

// The mask's largest outer contour as [x1, y1, x2, y2, ...] (OpenCV's border following).
nlohmann::json outline(const datasets::Rle& rle, const std::vector<uint8_t>& bits) {
  const cv::Mat mask(static_cast<int>(rle.height), static_cast<int>(rle.width), CV_8UC1,
                     const_cast<uint8_t*>(bits.data()));  // findContours reads it only
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(mask, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  std::vector<int> out;
  const auto largest = std::max_element(contours.begin(), contours.end(), [](const auto& a, const auto& b) {
    return cv::contourArea(a) < cv::contourArea(b);
  });
  if (largest != contours.end())
    for (const auto& p : *largest) out.insert(out.end(), {p.x, p.y});
  return out;
}

}  // namespace

ServeRequest parse_serve_request(const std::string& line, const ServeOptions& o, nlohmann::json& id) {
  // Nesting is bounded while parsing: a value 100,000 levels deep overflowed the stack when copied.
  const nlohmann::json::parser_callback_t shallow = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxRequestDepth) bad("the request nests deeper than " + std::to_string(kMaxRequestDepth) + " levels");
    return true;
  };
  const auto j = nlohmann::json::parse(line, shallow, /*allow_exceptions=*/false);
  if (!j.is_object()) bad("the request is not a JSON object");
  id = j.value("id", nlohmann::json());  // echoed with an error too
  return parse_request(j, o);
}

std::string answer_request(Predictor& predictor, const std::string& line, const ServeOptions& o) {
  nlohmann::json id;
  bool parsed = false;  // after this, a failure is the server's, not the request's
  try {
    auto r = parse_serve_request(line, o, id);
    parsed = true;
    nlohmann::json dets = nlohmann::json::array();
    for (const auto& p : predict_rgb(predictor, r.rgb, r.threshold, r.topk)) {
      auto d = to_json(p);
      if (p.mask && (r.cvat_masks || r.polygons)) {  // decoded once for both forms
        const auto bits = datasets::decode(*p.mask, datasets::MaskLayout::row_major);
        if (r.cvat_masks) d["cvat_mask"] = cvat_mask(*p.mask, bits);
        if (r.polygons) d["polygon"] = outline(*p.mask, bits);
      }
      dets.push_back(std::move(d));
    }
    return nlohmann::json{{"id", id}, {"width", r.rgb.size(1)}, {"height", r.rgb.size(0)}, {"detections", dets}}.dump();
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
    what = what.substr(0, what.find('\n'));
    nlohmann::json answer{{"id", id}, {"error", what}};
    if (parsed) answer["internal"] = true;
    return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

int64_t serve(Predictor& predictor, std::istream& in, std::ostream& out, const ServeOptions& o) {
  int64_t answered = 0;
  std::string line;
  bool too_long = false;
  while (read_line(in, o.max_request_bytes, line, too_long)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos && !too_long) continue;  // blank lines
    out << (too_long
                ? nlohmann::json{{"id", nullptr},
                                 {"error", "request longer than " + std::to_string(o.max_request_bytes) + " bytes"}}
                      .dump()
                : answer_request(predictor, line, o))
        << "\n"
        << std::flush;
    ++answered;
  }
  return answered;
}

}  // namespace detr
