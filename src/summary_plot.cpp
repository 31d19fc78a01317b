#include "src/summary_plot.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "datasets/coco_mask.h"
#include "util/atomic_file.h"

namespace detr {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxEpoch = 1'000'000;  // the most epochs a checkpoint may record

std::optional<double> number_at(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

// stats[i] of a COCO stats array; -1 ("nothing evaluated") is absent.
std::optional<double> stat_at(const nlohmann::json& j, const char* key, size_t i) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() <= i || !(*it)[i].is_number()) return std::nullopt;
  const double v = (*it)[i].get<double>();
  return v >= 0 && v <= 1 ? std::optional<double>(v) : std::nullopt;
}

// The last `max_bytes` of a file, from a line start.
std::string tail_lines(const fs::path& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(std::max<std::streamoff>(0, in.tellg()));
  const size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(size - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  if (start > 0) {
    const auto first_end = text.find('\n');
    text.erase(0, first_end == std::string::npos ? text.size() : first_end + 1);
  }
  return text;
}

// An axis maximum at or above `v`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 x 10^k (five ticks stay round).
double nice_ceiling(double v) {
  if (!(v > 0)) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0})
    if (m * p >= v * (1 + 1e-12)) return m * p;
  return 10 * p;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const cv::Scalar kInk{40, 40, 40}, kGrid{225, 225, 225}, kBest{0, 0, 200};
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img,
          const std::string& s,
          cv::Point at,
          double scale,
          const cv::Scalar& colour = kInk,
          int thickness = 1) {
  cv::putText(img, s, at, kFont, scale, colour, thickness, cv::LINE_AA);
}

// Axes, grid and tick labels of one panel: y from 0 to y_max in 5 steps, x over the epochs.
void draw_axes(cv::Mat& img, const cv::Rect& r, const SummaryLayout& l, double y_max, const std::string& name) {
  for (int k = 0; k <= 5; ++k) {
    const int y = r.y + r.height - r.height * k / 5;
    cv::line(img, {r.x, y}, {r.x + r.width, y}, kGrid, 1);
    text(img, fixed(y_max * k / 5, y_max < 0.15 ? 3 : y_max < 1.5 ? 2 : 1), {r.x - 56, y + 5}, 0.45);
  }
  const int64_t span = l.last_epoch - l.first_epoch, step = std::max<int64_t>(1, (span + 5) / 6);
  for (int64_t e = l.first_epoch; e <= l.last_epoch; e += step) {
    const int x = l.loss_point(e, 0).x - l.loss_panel.x + r.x;
    cv::line(img, {x, r.y + r.height}, {x, r.y + r.height + 5}, kInk, 1);
    text(img, std::to_string(e), {x - 8, r.y + r.height + 22}, 0.45);
  }
  cv::rectangle(img, r, kInk, 1);
  text(img, "epoch", {r.x + r.width / 2 - 22, r.y + r.height + 44}, 0.5);
  text(img, name, {r.x, r.y - 12}, 0.65, kInk, 2);
}

// One series as a line through its points (and a dot at each, so a lone evaluation shows).
void draw_series(cv::Mat& img, const std::vector<cv::Point>& points, const cv::Scalar& colour) {
  if (points.size() > 1) cv::polylines(img, points, false, colour, 2, cv::LINE_AA);
  if (points.size() <= 60)
    for (const auto& p : points) cv::circle(img, p, 3, colour, cv::FILLED, cv::LINE_AA);
}

void legend(cv::Mat& img, cv::Point at, const std::vector<std::pair<std::string, cv::Scalar>>& entries) {
  for (const auto& [name, colour] : entries) {
    cv::line(img, {at.x, at.y - 5}, {at.x + 24, at.y - 5}, colour, 3, cv::LINE_AA);
    text(img, name, {at.x + 30, at.y}, 0.5);
    at.x += 48 + static_cast<int>(name.size()) * 10;
  }
}

}  // namespace

std::vector<EpochFigures> read_epoch_figures(const fs::path& log_txt, size_t max_bytes) {
  std::map<int64_t, EpochFigures> by_epoch;  // a resumed run repeats epochs: the last line stands
  std::istringstream lines(tail_lines(log_txt, max_bytes));
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_integer()) continue;
    EpochFigures f;
    f.epoch = j["epoch"].get<int64_t>();
    if (f.epoch < 0 || f.epoch > kMaxEpoch) continue;  // not a line of ours
    f.train_loss = number_at(j, "train_loss");
    f.val_loss = number_at(j, "test_loss");
    f.ap = stat_at(j, "test_coco_eval_bbox", 0);
    f.ap50 = stat_at(j, "test_coco_eval_bbox", 1);
    f.mask_ap = stat_at(j, "test_coco_eval_masks", 0);
    by_epoch[f.epoch] = f;
  }
  std::vector<EpochFigures> out;
  for (auto& [epoch, f] : by_epoch) out.push_back(f);
  return out;
}

cv::Point SummaryLayout::loss_point(int64_t epoch, double loss) const {
  const double span = static_cast<double>(std::max<int64_t>(1, last_epoch - first_epoch));
  const double fx = last_epoch == first_epoch ? 0.5 : static_cast<double>(epoch - first_epoch) / span;
  const double fy = std::isfinite(loss) ? std::clamp(loss / loss_max, 0.0, 1.0) : 1.0;
  return {loss_panel.x + static_cast<int>(std::lround(fx * loss_panel.width)),
          loss_panel.y + loss_panel.height - static_cast<int>(std::lround(fy * loss_panel.height))};
}

cv::Point SummaryLayout::ap_point(int64_t epoch, double ap) const {
  const auto p = loss_point(epoch, 0);
  const double fy = std::clamp(ap / ap_max, 0.0, 1.0);
  return {p.x - loss_panel.x + ap_panel.x,
          ap_panel.y + ap_panel.height - static_cast<int>(std::lround(fy * ap_panel.height))};
}

SummaryLayout summary_layout(const std::vector<EpochFigures>& epochs) {
  SummaryLayout l;
  l.loss_panel = cv::Rect(80, 90, 520, 370);
  l.ap_panel = cv::Rect(730, 90, 520, 370);
  if (epochs.empty()) return l;
  l.first_epoch = epochs.front().epoch;
  l.last_epoch = epochs.back().epoch;
  double most = 0;
  for (const auto& e : epochs)
    for (const auto& v : {e.train_loss, e.val_loss})
      if (v && *v < 1e30) most = std::max(most, *v);  // an overflowed loss is drawn at the top
  l.loss_max = nice_ceiling(most);
  double best_ap = 0;
  for (const auto& e : epochs)
    for (const auto& v : {e.ap, e.ap50, e.mask_ap})
      if (v) best_ap = std::max(best_ap, *v);
  l.ap_max = std::min(1.0, nice_ceiling(std::max(best_ap, 0.05)));
  return l;
}

cv::Mat draw_summary(const std::vector<EpochFigures>& epochs, const std::string& title) {
  cv::Mat img(SummaryLayout::kHeight, SummaryLayout::kWidth, CV_8UC3, cv::Scalar(255, 255, 255));
  const auto l = summary_layout(epochs);
  draw_axes(img, l.loss_panel, l, l.loss_max, "loss");
  draw_axes(img, l.ap_panel, l, l.ap_max, "validation AP");
  using Pick = std::optional<double> EpochFigures::*;
  auto series = [&](Pick pick, bool loss) {
    std::vector<cv::Point> points;
    for (const auto& e : epochs)
      if (const auto v = e.*pick) points.push_back(loss ? l.loss_point(e.epoch, *v) : l.ap_point(e.epoch, *v));
    return points;
  };
  draw_series(img, series(&EpochFigures::train_loss, true), SummaryColours::train_loss);
  draw_series(img, series(&EpochFigures::val_loss, true), SummaryColours::val_loss);
  draw_series(img, series(&EpochFigures::ap50, false), SummaryColours::ap50);
  draw_series(img, series(&EpochFigures::ap, false), SummaryColours::ap);
  const bool masks =
      std::any_of(epochs.begin(), epochs.end(), [](const EpochFigures& e) { return e.mask_ap.has_value(); });
  if (masks) draw_series(img, series(&EpochFigures::mask_ap, false), SummaryColours::mask_ap);
  legend(img, {l.loss_panel.x, l.loss_panel.y + l.loss_panel.height + 70},
         {{"train", SummaryColours::train_loss}, {"validation", SummaryColours::val_loss}});
  std::vector<std::pair<std::string, cv::Scalar>> ap_entries{{"AP", SummaryColours::ap},
                                                             {"AP50", SummaryColours::ap50}};
  if (masks) ap_entries.push_back({"mask AP", SummaryColours::mask_ap});
  legend(img, {l.ap_panel.x, l.ap_panel.y + l.ap_panel.height + 70}, ap_entries);

  std::string headline = title;
  if (!epochs.empty()) headline += "   epochs " + std::to_string(l.first_epoch) + ".." + std::to_string(l.last_epoch);
  const EpochFigures* best = nullptr;
  for (const auto& e : epochs)
    if (e.ap && (!best || *e.ap > *best->ap)) best = &e;
  if (best) {  // the first epoch reaching the best AP, as best.pth keeps it
    const auto top = l.ap_point(best->epoch, l.ap_max), bottom = l.ap_point(best->epoch, 0.0);
    for (int y = top.y; y < bottom.y; y += 10) cv::line(img, {top.x, y}, {top.x, std::min(y + 5, bottom.y)}, kBest, 1);
    headline += "   best AP " + fixed(*best->ap, 3) + " at epoch " + std::to_string(best->epoch);
    if (best->ap50) headline += " (AP50 " + fixed(*best->ap50, 3) + ")";
  }
  text(img, headline, {20, 36}, 0.7, kInk, 2);
  return img;
}

namespace {
constexpr int kConfusionMargin = 170, kConfusionTop = 60;
int confusion_cell_size(size_t n) { return std::clamp(640 / static_cast<int>(n + 1), 10, 64); }
std::string short_name(const std::string& s) { return s.size() > 18 ? s.substr(0, 17) + "~" : s; }
}  // namespace

cv::Rect confusion_cell(const datasets::ConfusionMatrix& m, size_t row, size_t column) {
  const int c = confusion_cell_size(m.classes.size());
  return {kConfusionMargin + static_cast<int>(column) * c, kConfusionTop + static_cast<int>(row) * c, c, c};
}

cv::Mat draw_confusion(const datasets::ConfusionMatrix& m) {
  const size_t n = m.classes.size();
  if (n == 0 || n > kMaxConfusionClasses) return {};
  const int c = confusion_cell_size(n), side = static_cast<int>(n + 1) * c;
  cv::Mat img(kConfusionTop + side + 40, std::max(kConfusionMargin + side + 20, 620), CV_8UC3,
              cv::Scalar(255, 255, 255));
  auto label = [&](size_t k) { return k < n ? short_name(m.classes[k].name) : std::string("background"); };
  const double font = std::min(0.45, c / 40.0);
  for (size_t r = 0; r <= n; ++r) {
    int64_t row_total = 0;
    for (int64_t v : m.counts[r]) row_total += v;
    for (size_t k = 0; k <= n; ++k) {
      const auto cell = confusion_cell(m, r, k);
      const double share = row_total ? static_cast<double>(m.counts[r][k]) / static_cast<double>(row_total) : 0;
      const cv::Scalar shade(255, 255 - 200 * share, 255 - 230 * share);  // white to deep blue (BGR)
      cv::rectangle(img, cell, shade, cv::FILLED);
      cv::rectangle(img, cell, cv::Scalar(200, 200, 200), 1);
      if (c >= 24 && m.counts[r][k] > 0)
        text(img, std::to_string(m.counts[r][k]), {cell.x + 3, cell.y + c / 2 + 5}, font,
             share > 0.5 ? cv::Scalar(255, 255, 255) : kInk);
    }
    const auto row_cell = confusion_cell(m, r, 0);
    text(img, label(r), {8, row_cell.y + c / 2 + 5}, 0.45);
  }
  for (size_t k = 0; k <= n; k += std::max<size_t>(1, 12 / std::max(1, c / 2))) {  // column names, thinned
    const auto cell = confusion_cell(m, 0, k);
    text(img, label(k).substr(0, static_cast<size_t>(std::max(1, c / 6))), {cell.x + 2, kConfusionTop - 8}, 0.4);
  }
  text(
      img,
      "ground truth (rows) vs detected (columns), IoU " + fixed(m.iou, 2) + ", score >= " + fixed(m.score_threshold, 2),
      {8, 24}, 0.5, kInk, 1);
  return img;
}

std::vector<size_t> pick_validation_images(const datasets::CocoDataset& val, size_t n) {
  std::map<int64_t, std::vector<size_t>> by_class;  // the images holding each class, in image order
  for (size_t i = 0; i < val.images.size(); ++i)
    for (const auto& o : val.images[i].objects)
      if (by_class[o.category_id].empty() || by_class[o.category_id].back() != i) by_class[o.category_id].push_back(i);
  std::vector<size_t> picked;
  std::vector<char> taken(val.images.size(), 0);
  std::map<int64_t, size_t> next;  // each class's next candidate
  std::set<int64_t> shown;         // classes the picked images show, this round
  for (bool more = true; more && picked.size() < n;) {
    more = false;
    for (auto& [cls, images] : by_class) {  // a round: each class not yet shown gives one image
      if (picked.size() == n) break;
      if (shown.count(cls)) continue;
      auto& k = next[cls];
      while (k < images.size() && taken[images[k]]) ++k;
      if (k == images.size()) continue;
      taken[images[k]] = 1;
      picked.push_back(images[k]);
      for (const auto& o : val.images[images[k]].objects) shown.insert(o.category_id);
      more = true;
    }
    if (!more && !shown.empty()) {  // every class shown: the next round may repeat them
      shown.clear();
      more = true;
    }
  }
  for (size_t i = 0; i < val.images.size() && picked.size() < n; ++i)  // images without objects, last
    if (!taken[i]) picked.push_back(i);
  std::sort(picked.begin(), picked.end());
  return picked;
}

namespace {
cv::Scalar class_colour(int64_t id) {  // BGR, distinct for neighbouring ids, never green
  static const cv::Scalar palette[] = {{40, 40, 230}, {230, 120, 30}, {200, 40, 200}, {20, 160, 240},
                                       {160, 60, 40}, {120, 40, 160}, {60, 100, 250}, {180, 180, 20}};
  return palette[static_cast<size_t>(id) % 8];
}

void draw_labelled_box(
    cv::Mat& img, const std::array<double, 4>& xywh, double scale, const std::string& label, const cv::Scalar& colour) {
  for (double v : xywh)
    if (!std::isfinite(v)) return;
  const double limit = 3.0 * std::max(img.cols, img.rows);  // far outside is drawn at the edge, in int range
  auto px = [&](double v) { return static_cast<int>(std::clamp(v * scale, -limit, limit)); };
  const cv::Rect r(px(xywh[0]), px(xywh[1]), std::max(1, px(xywh[2])), std::max(1, px(xywh[3])));
  cv::rectangle(img, r, colour, 2, cv::LINE_AA);
  int base = 0;
  const auto size = cv::getTextSize(label, kFont, 0.45, 1, &base);
  const cv::Point at(r.x, std::max(size.height + 4, r.y - 3));
  cv::rectangle(img, {at.x, at.y - size.height - 3}, {at.x + size.width + 4, at.y + 3}, colour, cv::FILLED);
  text(img, label, {at.x + 2, at.y}, 0.45, cv::Scalar(255, 255, 255));
}
}  // namespace

cv::Mat draw_validation_image(const cv::Mat& bgr,
                              const datasets::CocoImageRecord& rec,
                              const std::vector<datasets::CocoResult>& detections,
                              const std::vector<datasets::CocoResult>& mask_detections,
                              const std::vector<datasets::CocoCategory>& categories,
                              double threshold,
                              int longest_side) {
  std::map<int64_t, std::string> names;
  for (const auto& c : categories) names[c.id] = c.name;
  auto name = [&](int64_t id) { return names.count(id) ? names[id] : std::to_string(id); };
  const double scale = static_cast<double>(longest_side) / std::max(bgr.cols, bgr.rows);
  cv::Mat shown;
  cv::resize(bgr, shown,
             cv::Size(std::max(1, static_cast<int>(std::lround(bgr.cols * scale))),
                      std::max(1, static_cast<int>(std::lround(bgr.rows * scale)))),
             0, 0, cv::INTER_AREA);
  cv::Mat truth = shown.clone(), predicted = shown.clone();
  for (const auto& m : mask_detections) {  // masks first, under the boxes
    if (m.image_id != rec.id || m.score < threshold || !m.segmentation || m.segmentation->counts.empty()) continue;
    const auto bits = datasets::decode(*m.segmentation, datasets::MaskLayout::row_major);
    cv::Mat mask(static_cast<int>(m.segmentation->height), static_cast<int>(m.segmentation->width), CV_8UC1,
                 const_cast<uint8_t*>(bits.data()));
    cv::resize(mask, mask, shown.size(), 0, 0, cv::INTER_NEAREST);
    cv::Mat tinted = predicted.clone();
    tinted.setTo(class_colour(m.category_id), mask);
    cv::addWeighted(tinted, 0.4, predicted, 0.6, 0, tinted);
    tinted.copyTo(predicted, mask);
  }
  for (const auto& o : rec.objects)
    draw_labelled_box(truth, o.bbox, scale, name(o.category_id) + (o.iscrowd ? " (crowd)" : ""),
                      cv::Scalar(40, 170, 40));
  for (const auto& d : detections)
    if (d.image_id == rec.id && d.score >= threshold)
      draw_labelled_box(predicted, d.bbox, scale,
                        name(d.category_id) + " " + std::to_string(std::lround(d.score * 100)) + "%",
                        class_colour(d.category_id));
  cv::Mat out(shown.rows + 24, shown.cols * 2 + 8, CV_8UC3, cv::Scalar(255, 255, 255));
  truth.copyTo(out(cv::Rect(0, 24, shown.cols, shown.rows)));
  predicted.copyTo(out(cv::Rect(shown.cols + 8, 24, shown.cols, shown.rows)));
  text(out, "ground truth", {4, 17}, 0.5);
  text(out, "predicted (score >= " + fixed(threshold, 2) + ")", {shown.cols + 12, 17}, 0.5);
  return out;
}

std::string encode_jpeg(const cv::Mat& bgr) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".jpg", bgr, bytes, {cv::IMWRITE_JPEG_QUALITY, 75}))
    throw std::runtime_error("cannot encode a JPEG picture");
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string encode_png(const cv::Mat& bgr) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", bgr, bytes)) throw std::runtime_error("cannot encode a PNG picture");
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_summary_png(const fs::path& log_txt, const fs::path& png, const std::string& title) {
  const auto epochs = read_epoch_figures(log_txt);
  if (epochs.empty()) return;
  util::write_file_atomically(png, encode_png(draw_summary(epochs, title)));
}

}  // namespace detr
