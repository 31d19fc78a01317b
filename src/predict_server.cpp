#include "src/predict_server.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

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
    if (too_long) continue;
    if (line.size() < limit) {
      line.push_back(c);
    } else {  // its bytes are not kept: the answer is an error
      too_long = true;
      std::string().swap(line);
    }
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

namespace {

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

std::string error_answer(const nlohmann::json& id, const std::exception& e, bool internal) {
  std::string what = e.what();
  if (auto c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
  what = what.substr(0, what.find('\n'));
  nlohmann::json answer{{"id", id}, {"error", what}};
  if (internal) answer["internal"] = true;
  return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string detections_answer(const ServeRequest& r,
                              int64_t width,
                              int64_t height,
                              const std::vector<Prediction>& found) {
  nlohmann::json dets = nlohmann::json::array();
  for (const auto& p : found) {
    auto d = to_json(p);
    if (p.mask && (r.cvat_masks || r.polygons)) {  // decoded once for both forms
      const auto bits = datasets::decode(*p.mask, datasets::MaskLayout::row_major);
      if (r.cvat_masks) d["cvat_mask"] = cvat_mask(*p.mask, bits);
      if (r.polygons) d["polygon"] = outline(*p.mask, bits);
    }
    dets.push_back(std::move(d));
  }
  return nlohmann::json{{"id", r.id}, {"width", width}, {"height", height}, {"detections", dets}}.dump();
}

// Requests parsed and prepared for the model; `answers` holds the ones already answered (errors).
struct PendingBatch {
  std::vector<ServeRequest> requests;  // images released once prepared
  std::vector<PreparedImage> images;
  std::vector<std::optional<std::string>> answers;
  std::vector<bool> blank;
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> by_fed_size;  // (h, w) -> request indices
};

PendingBatch prepare_requests(const Predictor& predictor,
                              std::vector<std::string>& lines,  // each freed once parsed
                              const std::vector<bool>& too_long,
                              const ServeOptions& o) {
  const size_t n = lines.size();
  PendingBatch b{std::vector<ServeRequest>(n),
                 std::vector<PreparedImage>(n),
                 std::vector<std::optional<std::string>>(n),
                 std::vector<bool>(n),
                 {}};
  for (size_t i = 0; i < n; ++i) {
    if (too_long[i]) {
      b.answers[i] = nlohmann::json{{"id", nullptr},
                                    {"error", "request longer than " + std::to_string(o.max_request_bytes) + " bytes"}}
                         .dump();
      continue;
    }
    b.blank[i] = is_blank(lines[i]);
    if (b.blank[i]) continue;
    nlohmann::json id;
    try {
      b.requests[i] = parse_serve_request(lines[i], o, id);
      std::string().swap(lines[i]);
    } catch (const std::exception& e) {
      b.answers[i] = error_answer(id, e, false);
      continue;
    }
    auto& r = b.requests[i];
    try {  // a well-formed request: a failure from here on is the server's
      b.images[i] = prepare_image(predictor, r.rgb, r.threshold, r.topk);
      r.rgb = torch::Tensor();
      b.by_fed_size[{b.images[i].image.size(1), b.images[i].image.size(2)}].push_back(i);
    } catch (const std::exception& e) {
      b.answers[i] = error_answer(r.id, e, true);
    }
  }
  return b;
}

// Answers requests `chunk` with one forward (throws if it fails).
void answer_together(Predictor& predictor, PendingBatch& b, const std::vector<size_t>& chunk, int64_t& forwards) {
  std::vector<PreparedImage> images;
  for (size_t i : chunk) images.push_back(b.images[i]);
  ++forwards;
  const auto found = predict_batch(predictor, images);
  for (size_t k = 0; k < chunk.size(); ++k) {
    const auto& im = b.images[chunk[k]];
    b.answers[chunk[k]] = detections_answer(b.requests[chunk[k]], im.width, im.height, found[k]);
  }
}

// One forward per fed size, at most max_batch images each. A batch whose forward fails (out of
// memory, say) is tried again one image at a time, so that each request gets its own answer.
void run_batches(Predictor& predictor, PendingBatch& b, const ServeOptions& o, int64_t& forwards) {
  const size_t max_batch = static_cast<size_t>(std::max<int64_t>(1, o.max_batch));
  for (const auto& [size, indices] : b.by_fed_size) {
    for (size_t start = 0; start < indices.size(); start += max_batch) {
      const auto first = indices.begin() + static_cast<std::ptrdiff_t>(start);
      const std::vector<size_t> chunk(first,
                                      first + static_cast<std::ptrdiff_t>(std::min(max_batch, indices.size() - start)));
      if (chunk.size() > 1) {
        try {
          answer_together(predictor, b, chunk, forwards);
          continue;
        } catch (const std::exception&) {  // each image again, alone
        }
      }
      for (size_t i : chunk) {
        try {
          answer_together(predictor, b, {i}, forwards);
        } catch (const std::exception& e) {
          b.answers[i] = error_answer(b.requests[i].id, e, true);
        }
      }
    }
  }
}

// Lines of a stream read on a second thread, ahead of the taker by at most `capacity` lines and
// `max_bytes` bytes (plus the line being read). A failure of the reading is rethrown by take().
class LineReader {
 public:
  LineReader(std::istream& in, size_t limit, size_t capacity)
      : state_(std::make_shared<State>()), in_(in), tie_(in.tie(nullptr)) {  // untied: no flush from the reader
    state_->capacity = capacity;
    state_->max_bytes = limit;
    thread_ = std::thread([state = state_, &in, limit] { read_all(*state, in, limit); });
  }
  // Only reached at the end of the input or after a reading failure (serve() answers every batch,
  // whatever fails in it), so the reader has ended or wakes to `stop`.
  ~LineReader() {
    {
      std::lock_guard<std::mutex> lock(state_->m);
      state_->stop = true;
    }
    state_->cv.notify_all();
    thread_.join();
    in_.tie(tie_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Blocks until a line is read or the input ends; takes at most `max` lines. False at the end.
  bool take(size_t max, std::vector<std::string>& lines, std::vector<bool>& too_long) {
    lines.clear();
    too_long.clear();
    std::unique_lock<std::mutex> lock(state_->m);
    state_->cv.wait(lock, [&] { return !state_->lines.empty() || state_->done; });
    if (state_->lines.empty()) {
      if (state_->error) std::rethrow_exception(state_->error);
      return false;
    }
    while (!state_->lines.empty() && lines.size() < max) {
      state_->bytes -= state_->lines.front().first.size();
      lines.push_back(std::move(state_->lines.front().first));
      too_long.push_back(state_->lines.front().second);
      state_->lines.pop_front();
    }
    state_->cv.notify_all();
    return true;
  }

 private:
  struct State {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::pair<std::string, bool>> lines;  // (line, cut at the limit)
    size_t capacity = 1, max_bytes = 0, bytes = 0;
    bool done = false, stop = false;
    std::exception_ptr error;
  };

  static void read_all(State& s, std::istream& in, size_t limit) {
    std::exception_ptr error;
    try {
      std::string line;
      bool too_long = false;
      while (read_line(in, limit, line, too_long)) {
        std::unique_lock<std::mutex> lock(s.m);
        s.cv.wait(lock, [&] { return (s.lines.size() < s.capacity && s.bytes < s.max_bytes) || s.stop; });
        if (s.stop) return;
        s.bytes += line.size();
        s.lines.emplace_back(std::move(line), too_long);
        s.cv.notify_all();
      }
    } catch (...) {  // bad_alloc, a stream that throws: ends the server through take()
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(s.m);
    s.error = error;
    s.done = true;
    s.cv.notify_all();
  }

  std::shared_ptr<State> state_;
  std::istream& in_;
  std::ostream* tie_;
  std::thread thread_;
};

}  // namespace

std::vector<std::string> answer_requests(Predictor& predictor,
                                         std::vector<std::string> lines,
                                         const std::vector<bool>& too_long,
                                         const ServeOptions& o,
                                         int64_t* forwards) {
  const size_t n = lines.size();
  auto b = prepare_requests(predictor, lines, too_long, o);
  int64_t ran = 0;
  run_batches(predictor, b, o, ran);
  if (forwards) *forwards += ran;
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i)
    if (!b.blank[i]) out.push_back(b.answers[i].value_or(R"({"id":null,"error":"no answer","internal":true})"));
  return out;
}

std::string answer_request(Predictor& predictor, const std::string& line, const ServeOptions& o) {
  return is_blank(line) ? nlohmann::json{{"id", nullptr}, {"error", "the request is not a JSON object"}}.dump()
                        : answer_requests(predictor, {line}, {false}, o).front();
}

int64_t serve(Predictor& predictor, std::istream& in, std::ostream& out, const ServeOptions& o, int64_t* forwards) {
  const size_t max_batch = static_cast<size_t>(std::max<int64_t>(1, o.max_batch));
  LineReader reader(in, o.max_request_bytes, max_batch);
  int64_t answered = 0;
  std::vector<std::string> lines;
  std::vector<bool> too_long;
  while (reader.take(max_batch, lines, too_long)) {
    const size_t n = lines.size();
    std::vector<std::string> answers;
    try {
      answers = answer_requests(predictor, std::move(lines), too_long, o, forwards);
    } catch (const std::exception& e) {  // out of memory outside any one request: each gets the error
      answers.assign(n, error_answer(nullptr, e, true));
    }
    for (const auto& answer : answers) {
      out << answer << "\n";
      ++answered;
    }
    out << std::flush;
  }
  return answered;
}

}  // namespace detr
