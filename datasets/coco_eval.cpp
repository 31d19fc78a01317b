// COCO bbox evaluation, a C++ rendering of pycocotools' COCOeval (evaluate, accumulate, summarize) and of
// the bbox branch of COCO.loadRes. See coco_eval.h for the contract; the comments below name the
// pycocotools step each piece reproduces.
#include "datasets/coco_eval.h"
#include "datasets/json_number.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace detr::datasets {
namespace {

using nlohmann::json;

// ---- loading --------------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error(source + ": " + what);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "read error");
  return text.str();
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail(source, std::string("invalid JSON: ") + e.what());
  }
}

// One element of a JSON array being read, for error messages: "annotations[3] (id 17): ...".
struct Entry {
  const std::string& source;
  const char* array;
  size_t index;
  const json& value;

  [[noreturn]] void fail(const std::string& what) const {
    std::string where = std::string(array) + "[" + std::to_string(index) + "]";
    if (value.is_object()) {
      auto id = value.find("id");
      if (id != value.end() && id->is_number()) where += " (id " + json_preview(*id) + ")";
    }
    detr::datasets::fail(source, where + ": " + what);
  }

  const json& field(const char* key) const {
    if (!value.is_object()) fail("expected a JSON object");
    auto it = value.find(key);
    if (it == value.end()) fail(std::string("missing field '") + key + "'");
    return *it;
  }

  // An integer id; an integral float such as 3.0 is accepted (Python compares 3.0 == 3).
  int64_t id_field(const char* key) const {
    const json& v = field(key);
    if (const auto i = exact_int64(v)) return *i;
    fail(std::string("field '") + key + "' must be an integer within int64, got " + json_preview(v));
  }

  double number_field(const char* key) const {
    const json& v = field(key);
    if (!v.is_number()) fail(std::string("field '") + key + "' must be a number, got " + json_preview(v));
    return v.get<double>();
  }

  std::array<double, 4> bbox_field() const {
    const json& v = field("bbox");
    if (!v.is_array() || v.size() != 4 || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number(); }))
      fail("field 'bbox' must be [x, y, width, height] numbers, got " + json_preview(v));
    return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>(), v[3].get<double>()};
  }
};

const json& require_array(const json& doc, const char* key, const std::string& source) {
  auto it = doc.find(key);
  if (it == doc.end()) fail(source, std::string("missing field '") + key + "'");
  if (!it->is_array()) fail(source, std::string("field '") + key + "' must be an array");
  return *it;
}

std::vector<CocoImage> read_images(const json& doc, const std::string& source) {
  std::vector<CocoImage> images;
  std::unordered_set<int64_t> seen;
  const json& array = require_array(doc, "images", source);
  for (size_t i = 0; i < array.size(); ++i) {
    Entry e{source, "images", i, array[i]};
    CocoImage image;
    image.id = e.id_field("id");
    if (!seen.insert(image.id).second) e.fail("duplicate image id");
    if (auto w = array[i].find("width"); w != array[i].end()) image.width = exact_int64(*w).value_or(0);
    if (auto h = array[i].find("height"); h != array[i].end()) image.height = exact_int64(*h).value_or(0);
    images.push_back(image);
  }
  return images;
}

std::vector<CocoCategory> read_categories(const json& doc, const std::string& source) {
  std::vector<CocoCategory> categories;
  std::unordered_set<int64_t> seen;
  const json& array = require_array(doc, "categories", source);
  for (size_t i = 0; i < array.size(); ++i) {
    Entry e{source, "categories", i, array[i]};
    CocoCategory category;
    category.id = e.id_field("id");
    if (!seen.insert(category.id).second) e.fail("duplicate category id");
    if (auto n = array[i].find("name"); n != array[i].end() && n->is_string()) category.name = n->get<std::string>();
    categories.push_back(std::move(category));
  }
  return categories;
}

bool read_iscrowd(const Entry& e) {
  auto it = e.value.find("iscrowd");
  if (it == e.value.end() || it->is_null()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() != 0;
  e.fail("field 'iscrowd' must be 0 or 1, got " + json_preview(*it));
}

}  // namespace

CocoGroundTruth parse_coco_ground_truth(std::string_view json_text, const std::string& source) {
  const json doc = parse_json(json_text, source);
  if (!doc.is_object()) fail(source, "expected a JSON object with images, annotations and categories");
  CocoGroundTruth gt;
  gt.images = read_images(doc, source);
  gt.categories = read_categories(doc, source);
  std::unordered_set<int64_t> image_ids, category_ids, annotation_ids;
  for (const auto& image : gt.images) image_ids.insert(image.id);
  for (const auto& category : gt.categories) category_ids.insert(category.id);
  const json& array = require_array(doc, "annotations", source);
  gt.annotations.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    Entry e{source, "annotations", i, array[i]};
    CocoAnnotation ann;
    ann.id = e.id_field("id");
    ann.image_id = e.id_field("image_id");
    ann.category_id = e.id_field("category_id");
    ann.bbox = e.bbox_field();
    ann.area = e.number_field("area");
    ann.iscrowd = read_iscrowd(e);
    if (!annotation_ids.insert(ann.id).second) e.fail("duplicate annotation id");
    if (!image_ids.count(ann.image_id)) e.fail("image_id " + std::to_string(ann.image_id) + " is not in images");
    if (!category_ids.count(ann.category_id))
      e.fail("category_id " + std::to_string(ann.category_id) + " is not in categories");
    gt.annotations.push_back(ann);
  }
  return gt;
}

CocoGroundTruth load_coco_ground_truth(const std::string& path) {
  return parse_coco_ground_truth(read_text_file(path), path);
}

std::vector<CocoAnnotation> parse_coco_results(std::string_view json_text, const std::string& source,
                                               const CocoGroundTruth& gt) {
  const json doc = parse_json(json_text, source);
  if (!doc.is_array()) fail(source, "expected a JSON array of results");
  std::unordered_set<int64_t> image_ids;
  for (const auto& image : gt.images) image_ids.insert(image.id);
  std::vector<CocoAnnotation> results;
  results.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    Entry e{source, "results", i, doc[i]};
    CocoAnnotation det;
    det.image_id = e.id_field("image_id");
    det.category_id = e.id_field("category_id");
    det.bbox = e.bbox_field();
    det.score = e.number_field("score");
    if (!image_ids.count(det.image_id))
      e.fail("image_id " + std::to_string(det.image_id) + " is not an image of the ground truth");
    det.id = static_cast<int64_t>(i) + 1;  // COCO.loadRes: id = index + 1, area = w*h, iscrowd = 0
    det.area = det.bbox[2] * det.bbox[3];
    det.iscrowd = false;
    results.push_back(det);
  }
  return results;
}

std::vector<CocoAnnotation> load_coco_results(const std::string& path, const CocoGroundTruth& gt) {
  return parse_coco_results(read_text_file(path), path, gt);
}

// ---- evaluation ------------------------------------------------------------------------------------

namespace {

constexpr int kNumIou = 10;   // T
constexpr int kNumRec = 101;  // R
constexpr int kNumArea = 4;   // A: all, small, medium, large
constexpr int kNumMaxDet = 3; // M
constexpr std::array<int, kNumMaxDet> kMaxDets{1, 10, 100};
constexpr std::array<std::array<double, 2>, kNumArea> kAreaRanges{
    {{0.0, 1e10}, {0.0, 32.0 * 32.0}, {32.0 * 32.0, 96.0 * 96.0}, {96.0 * 96.0, 1e10}}};
constexpr const char* kAreaLabels[kNumArea] = {"all", "small", "medium", "large"};
constexpr uint16_t kAllIou = (1u << kNumIou) - 1;
constexpr double kEps = std::numeric_limits<double>::epsilon();  // np.spacing(1)

// np.linspace(start, stop, num): i * step + start, the last element exactly stop. `volatile` keeps the
// product rounded on its own (no fused multiply-add), as numpy computes it.
template <size_t N>
std::array<double, N> numpy_linspace(double start, double stop) {
  std::array<double, N> y{};
  const double step = (stop - start) / static_cast<double>(N - 1);
  for (size_t i = 0; i < N; ++i) {
    volatile double scaled = static_cast<double>(i) * step;
    y[i] = scaled + start;
  }
  y[N - 1] = stop;
  return y;
}

const std::array<double, kNumIou>& iou_thresholds() {
  static const auto thrs = numpy_linspace<kNumIou>(0.5, 0.95);
  return thrs;
}
const std::array<double, kNumRec>& recall_thresholds() {
  static const auto thrs = numpy_linspace<kNumRec>(0.0, 1.0);
  return thrs;
}

// Maps ids to dense indices 0..n-1: a table when the ids are compact enough, a hash map otherwise.
class IdIndex {
 public:
  explicit IdIndex(const std::vector<int64_t>& sorted_ids) {
    if (sorted_ids.empty()) return;
    min_ = sorted_ids.front();
    const uint64_t spread = static_cast<uint64_t>(sorted_ids.back()) - static_cast<uint64_t>(min_);
    if (spread < std::max<uint64_t>(64 * sorted_ids.size(), 1u << 20)) {
      table_.assign(spread + 1, -1);
      for (size_t i = 0; i < sorted_ids.size(); ++i)
        table_[static_cast<uint64_t>(sorted_ids[i]) - static_cast<uint64_t>(min_)] = static_cast<int32_t>(i);
    } else {
      for (size_t i = 0; i < sorted_ids.size(); ++i) map_.emplace(sorted_ids[i], static_cast<int32_t>(i));
    }
  }
  // -1 when absent.
  int32_t find(int64_t id) const {
    if (!table_.empty()) {
      const uint64_t offset = static_cast<uint64_t>(id) - static_cast<uint64_t>(min_);
      return offset < table_.size() ? table_[offset] : -1;
    }
    auto it = map_.find(id);
    return it == map_.end() ? -1 : it->second;
  }

 private:
  int64_t min_ = 0;
  std::vector<int32_t> table_;
  std::unordered_map<int64_t, int32_t> map_;
};

// Sorted unique ids (pycocotools: params.imgIds = sorted(getImgIds()), then np.unique).
template <class T>
std::vector<int64_t> sorted_ids(const std::vector<T>& items) {
  std::vector<int64_t> ids;
  ids.reserve(items.size());
  for (const auto& item : items) ids.push_back(item.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// Item indices grouped by (category, image), input order kept inside a group (pycocotools' _gts/_dts
// lists): two stable counting sorts. Items with a -1 index are dropped. cat_begin[k]..cat_begin[k+1]
// is category k's slice of `order`.
struct Grouped {
  std::vector<uint32_t> order;
  std::vector<uint32_t> cat_begin;
};

Grouped group_by_cell(const std::vector<int32_t>& cat, const std::vector<int32_t>& img, int num_cats,
                      int num_imgs) {
  const auto kept = [&](size_t i) { return cat[i] >= 0 && img[i] >= 0; };
  std::vector<uint32_t> img_begin(static_cast<size_t>(num_imgs) + 1, 0);
  for (size_t i = 0; i < cat.size(); ++i)
    if (kept(i)) ++img_begin[img[i] + 1];
  std::partial_sum(img_begin.begin(), img_begin.end(), img_begin.begin());
  std::vector<uint32_t> by_image(img_begin.back());
  for (size_t i = 0; i < cat.size(); ++i)
    if (kept(i)) by_image[img_begin[img[i]]++] = static_cast<uint32_t>(i);

  Grouped g;
  g.cat_begin.assign(static_cast<size_t>(num_cats) + 1, 0);
  for (uint32_t i : by_image) ++g.cat_begin[cat[i] + 1];
  std::partial_sum(g.cat_begin.begin(), g.cat_begin.end(), g.cat_begin.begin());
  std::vector<uint32_t> next(g.cat_begin.begin(), g.cat_begin.end() - 1);
  g.order.resize(by_image.size());
  for (uint32_t i : by_image) g.order[next[cat[i]]++] = i;
  return g;
}

// One detection after evaluateImg, for one (image, category): its score, its rank among the image's
// detections (for maxDets), and per area range the IoU thresholds where it matched a ground truth with
// a non-zero id (dtMatches != 0) and where it is ignored (dtIgnore), as bit sets over the 10 thresholds.
struct EvalDet {
  double score;
  uint32_t rank;
  std::array<uint16_t, kNumArea> matched;
  std::array<uint16_t, kNumArea> ignored;
};

// Buffers reused across cells so the per-cell work allocates nothing.
struct Workspace {
  std::vector<uint32_t> dets;     // detection indices of the cell, score order
  std::vector<double> ious;       // D x G, row-major by detection
  std::vector<uint32_t> gt_order; // per area: non-ignored ground truth first (stable)
  std::vector<uint8_t> gt_ignore; // per area, in gt_order
  std::vector<uint8_t> taken;     // per threshold: ground truth already matched (gtMatches > 0)
  std::vector<uint32_t> sorted;   // accumulate: category's detections in score order
  std::vector<uint32_t> flags;    // accumulate: matched | ignored << 16 of the kept detections
  std::vector<double> rc, pr;     // accumulate: recall and precision at the true positives
};

// maskUtils.iou for boxes (common/maskApi.c bbIou): against a crowd box the union is the detection area.
double box_iou(const std::array<double, 4>& d, const std::array<double, 4>& g, bool crowd) {
  const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
  if (w <= 0) return 0;
  const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
  if (h <= 0) return 0;
  const double da = d[2] * d[3];
  const double ga = g[2] * g[3];
  const double inter = w * h;
  const double uni = crowd ? da : da + ga - inter;
  return inter / uni;
}

// Indices by score, highest first, ties in input order (np.argsort(-score, kind='mergesort')).
// Insertion sort for the usual handful per cell: std::stable_sort allocates a buffer per call.
void stable_sort_by_score(std::vector<uint32_t>& idx, const std::vector<CocoAnnotation>& dts) {
  const auto higher = [&](uint32_t a, uint32_t b) { return dts[a].score > dts[b].score; };
  if (idx.size() > 32) {
    std::stable_sort(idx.begin(), idx.end(), higher);
    return;
  }
  for (size_t i = 1; i < idx.size(); ++i) {
    const uint32_t v = idx[i];
    size_t j = i;
    for (; j > 0 && higher(v, idx[j - 1]); --j) idx[j] = idx[j - 1];
    idx[j] = v;
  }
}

bool outside(double area, int a) { return area < kAreaRanges[a][0] || area > kAreaRanges[a][1]; }

// COCOeval.evaluateImg for one (image, category) cell and all area ranges at maxDet 100: greedy matching
// per IoU threshold of detections (score order, stable) to ground truth (ignored last, stable).
// Appends the cell's detections to `out` and adds its non-ignored ground truth to `npig`.
void evaluate_cell(const std::vector<CocoAnnotation>& gts, const uint32_t* gt_idx, size_t G,
                   const std::vector<CocoAnnotation>& dts, const uint32_t* dt_idx, size_t num_dt,
                   Workspace& ws, std::vector<EvalDet>& out, std::array<int64_t, kNumArea>& npig) {
  auto& dets = ws.dets;
  dets.assign(dt_idx, dt_idx + num_dt);
  stable_sort_by_score(dets, dts);
  if (dets.size() > static_cast<size_t>(kMaxDets.back())) dets.resize(kMaxDets.back());
  const size_t D = dets.size();

  ws.ious.resize(D * G);
  for (size_t d = 0; d < D; ++d)
    for (size_t g = 0; g < G; ++g)
      ws.ious[d * G + g] = box_iou(dts[dets[d]].bbox, gts[gt_idx[g]].bbox, gts[gt_idx[g]].iscrowd);

  const size_t first = out.size();
  for (size_t d = 0; d < D; ++d) out.push_back({dts[dets[d]].score, static_cast<uint32_t>(d), {}, {}});

  const auto& thrs = iou_thresholds();
  for (int a = 0; a < kNumArea; ++a) {
    // gt '_ignore' = iscrowd or area outside the range; sort ignored last (mergesort on the flag).
    ws.gt_order.clear();
    for (int pass = 0; pass < 2; ++pass)
      for (size_t g = 0; g < G; ++g) {
        const auto& gt = gts[gt_idx[g]];
        const bool ignore = gt.iscrowd || outside(gt.area, a);
        if (ignore == (pass == 1)) ws.gt_order.push_back(static_cast<uint32_t>(g));
      }
    ws.gt_ignore.resize(G);
    size_t num_kept = 0;
    for (size_t j = 0; j < G; ++j) {
      const auto& gt = gts[gt_idx[ws.gt_order[j]]];
      ws.gt_ignore[j] = gt.iscrowd || outside(gt.area, a);
      num_kept += !ws.gt_ignore[j];
    }
    npig[a] += static_cast<int64_t>(num_kept);

    for (int t = 0; t < kNumIou && G > 0; ++t) {
      ws.taken.assign(G, 0);
      for (size_t d = 0; d < D; ++d) {
        double best = std::min(thrs[t], 1 - 1e-10);
        int m = -1;
        const double* row = &ws.ious[d * G];
        for (size_t j = 0; j < G; ++j) {
          const size_t g = ws.gt_order[j];
          if (ws.taken[j] && !gts[gt_idx[g]].iscrowd) continue;
          if (m > -1 && !ws.gt_ignore[m] && ws.gt_ignore[j]) break;
          if (row[g] < best) continue;
          best = row[g];
          m = static_cast<int>(j);
        }
        if (m == -1) continue;
        EvalDet& e = out[first + d];
        e.ignored[a] |= static_cast<uint16_t>(ws.gt_ignore[m] << t);
        // dtMatches holds the gt id, so a gt with id 0 reads as unmatched afterwards (pycocotools).
        if (gts[gt_idx[ws.gt_order[m]]].id != 0) e.matched[a] |= static_cast<uint16_t>(1u << t);
        ws.taken[m] = 1;
      }
    }
    // Unmatched detections outside the area range are ignored; a detection's area is w*h (COCO.loadRes).
    for (size_t d = 0; d < D; ++d) {
      EvalDet& e = out[first + d];
      const auto& bbox = dts[dets[d]].bbox;
      if (outside(bbox[2] * bbox[3], a)) e.ignored[a] |= static_cast<uint16_t>(~e.matched[a] & kAllIou);
    }
  }
}

// Precision [T][R][K][A][M] and recall [T][K][A][M], -1 where a setting has no ground truth.
struct Accumulated {
  int num_cats = 0;
  std::vector<double> precision, recall;
  double& p(int t, int r, int k, int a, int m) {
    return precision[(((static_cast<size_t>(t) * kNumRec + r) * num_cats + k) * kNumArea + a) * kNumMaxDet + m];
  }
  double& rec(int t, int k, int a, int m) {
    return recall[((static_cast<size_t>(t) * num_cats + k) * kNumArea + a) * kNumMaxDet + m];
  }
};

// COCOeval.accumulate for one category and one (threshold, area, maxDet): precision made monotone
// and sampled at the recall thresholds with searchsorted(side='left'). `flags` are the kept detections
// in global score order. Two exact shortcuts:
//  - ignored detections are dropped: in pycocotools they repeat the previous tp/fp counts, which
//    changes neither the envelope nor the first index reaching a recall;
//  - among the rest tp + fp = i + 1, so precision tp / (i + 1 + eps) never rises at a false positive,
//    and the first index reaching a recall is a true positive (or 0). The envelope sampled at the recall
//    thresholds therefore needs precision and recall only at the true positives.
void accumulate_threshold(const std::vector<uint32_t>& flags, int t, int64_t npig, Workspace& ws,
                          Accumulated& acc, int k, int a, int m) {
  auto& rc = ws.rc;  // at the true positives
  auto& pr = ws.pr;
  rc.clear();
  pr.clear();
  int64_t tp = 0, n = 0;
  const uint32_t match_bit = 1u << t, ignore_bit = 1u << (t + 16);
  for (uint32_t f : flags) {
    if (f & ignore_bit) continue;
    ++n;
    if (f & match_bit) {
      ++tp;
      const double tpd = static_cast<double>(tp);
      rc.push_back(tpd / static_cast<double>(npig));             // rc = tp / npig
      pr.push_back(tpd / (static_cast<double>(n) + kEps));       // pr = tp / (fp + tp + np.spacing(1))
    }
  }
  acc.rec(t, k, a, m) = static_cast<double>(tp) / static_cast<double>(npig);  // rc[-1], 0 when nd == 0
  for (size_t i = pr.size(); i-- > 1;)
    if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
  const auto& rec_thrs = recall_thresholds();
  size_t j = 0;
  for (int r = 0; r < kNumRec; ++r) {
    while (j < rc.size() && rc[j] < rec_thrs[r]) ++j;
    acc.p(t, r, k, a, m) = j < rc.size() ? pr[j] : 0.0;
  }
}

void copy_setting(Accumulated& acc, int k, int a, int m_from, int m_to) {
  for (int t = 0; t < kNumIou; ++t) {
    acc.rec(t, k, a, m_to) = acc.rec(t, k, a, m_from);
    for (int r = 0; r < kNumRec; ++r) acc.p(t, r, k, a, m_to) = acc.p(t, r, k, a, m_from);
  }
}

void accumulate_category(const std::vector<EvalDet>& dets, const std::array<int64_t, kNumArea>& npig,
                         Workspace& ws, Accumulated& acc, int k) {
  // One stable sort serves every (area, maxDet): dropping ranks >= maxDet keeps the relative order.
  auto& sorted = ws.sorted;
  sorted.resize(dets.size());
  std::iota(sorted.begin(), sorted.end(), 0u);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](uint32_t a, uint32_t b) { return dets[a].score > dets[b].score; });
  uint32_t max_rank = 0;
  for (const auto& d : dets) max_rank = std::max(max_rank, d.rank);
  for (int a = 0; a < kNumArea; ++a) {
    if (npig[a] == 0) continue;  // no ground truth: stays -1
    for (int m = 0; m < kNumMaxDet; ++m) {
      if (m > 0 && max_rank < static_cast<uint32_t>(kMaxDets[m - 1])) {
        copy_setting(acc, k, a, m - 1, m);  // the smaller maxDet already kept every detection
        continue;
      }
      ws.flags.clear();
      for (uint32_t i : sorted)
        if (dets[i].rank < static_cast<uint32_t>(kMaxDets[m]))
          ws.flags.push_back(dets[i].matched[a] | (static_cast<uint32_t>(dets[i].ignored[a]) << 16));
      for (int t = 0; t < kNumIou; ++t) accumulate_threshold(ws.flags, t, npig[a], ws, acc, k, a, m);
    }
  }
}

// numpy's pairwise summation (add.reduce on a contiguous float64 array), so that means round as
// np.mean does.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// summarize()'s np.mean(s[s > -1]) over the values added in C order, or -1 when there are none.
struct Mean {
  std::vector<double> values;
  void add(double v) {
    if (v > -1) values.push_back(v);
  }
  double value() const {
    if (values.empty()) return -1.0;
    return pairwise_sum(values.data(), values.size()) / static_cast<double>(values.size());
  }
};

// The threshold index equal to `iou` (np.where(iouThr == p.iouThrs)), -1 if none.
int iou_index(double iou) {
  const auto& thrs = iou_thresholds();
  for (int t = 0; t < kNumIou; ++t)
    if (thrs[t] == iou) return t;
  return -1;
}

double summarize_ap(Accumulated& acc, std::optional<double> iou, int a, int m) {
  Mean mean;
  const int only = iou ? iou_index(*iou) : -1;
  if (iou && only < 0) return -1;
  for (int t = 0; t < kNumIou; ++t) {
    if (iou && t != only) continue;
    for (int r = 0; r < kNumRec; ++r)
      for (int k = 0; k < acc.num_cats; ++k) mean.add(acc.p(t, r, k, a, m));
  }
  return mean.value();
}

double summarize_ar(Accumulated& acc, int a, int m) {
  Mean mean;
  for (int t = 0; t < kNumIou; ++t)
    for (int k = 0; k < acc.num_cats; ++k) mean.add(acc.rec(t, k, a, m));
  return mean.value();
}

}  // namespace

CocoEvalResult evaluate_bbox(const CocoGroundTruth& gt, const std::vector<CocoAnnotation>& detections) {
  CocoEvalResult result;
  result.stats.fill(-1.0);
  if (detections.empty()) return result;  // see coco_eval.h: "nothing to evaluate"

  const std::vector<int64_t> img_ids = sorted_ids(gt.images);
  const std::vector<int64_t> cat_ids = sorted_ids(gt.categories);
  const IdIndex img_index(img_ids), cat_index(cat_ids);
  const int I = static_cast<int>(img_ids.size()), K = static_cast<int>(cat_ids.size());

  // Detections: an unknown image is an error (COCO.loadRes asserts), an unknown category is ignored.
  const auto& dts = detections;
  std::vector<int32_t> dt_img(dts.size()), dt_cat(dts.size());
  for (size_t i = 0; i < dts.size(); ++i) {
    const auto& d = dts[i];
    if (!std::isfinite(d.score))
      throw std::runtime_error("detection " + std::to_string(i) + ": score is not finite");
    dt_img[i] = img_index.find(d.image_id);
    if (dt_img[i] < 0)
      throw std::runtime_error("detection " + std::to_string(i) + ": image_id " + std::to_string(d.image_id) +
                               " is not an image of the ground truth");
    dt_cat[i] = cat_index.find(d.category_id);
  }
  std::vector<int32_t> gt_img(gt.annotations.size()), gt_cat(gt.annotations.size());
  for (size_t i = 0; i < gt.annotations.size(); ++i) {
    gt_img[i] = img_index.find(gt.annotations[i].image_id);
    gt_cat[i] = cat_index.find(gt.annotations[i].category_id);
  }
  const Grouped gts = group_by_cell(gt_cat, gt_img, K, I);
  const Grouped dtg = group_by_cell(dt_cat, dt_img, K, I);

  Accumulated acc;
  acc.num_cats = K;
  acc.precision.assign(static_cast<size_t>(kNumIou) * kNumRec * K * kNumArea * kNumMaxDet, -1.0);
  acc.recall.assign(static_cast<size_t>(kNumIou) * K * kNumArea * kNumMaxDet, -1.0);

  Workspace ws;
  std::vector<EvalDet> cat_dets;
  for (int k = 0; k < K; ++k) {
    cat_dets.clear();
    std::array<int64_t, kNumArea> npig{};
    const uint32_t* g = gts.order.data() + gts.cat_begin[k];
    const uint32_t* g_end = gts.order.data() + gts.cat_begin[k + 1];
    const uint32_t* d = dtg.order.data() + dtg.cat_begin[k];
    const uint32_t* d_end = dtg.order.data() + dtg.cat_begin[k + 1];
    // Walk the images in id order; cells with neither ground truth nor detections are skipped (None).
    while (g < g_end || d < d_end) {
      const int32_t image = std::min(g < g_end ? gt_img[*g] : I, d < d_end ? dt_img[*d] : I);
      const uint32_t* g_stop = g;
      while (g_stop < g_end && gt_img[*g_stop] == image) ++g_stop;
      const uint32_t* d_stop = d;
      while (d_stop < d_end && dt_img[*d_stop] == image) ++d_stop;
      evaluate_cell(gt.annotations, g, static_cast<size_t>(g_stop - g), dts, d, static_cast<size_t>(d_stop - d),
                    ws, cat_dets, npig);
      g = g_stop;
      d = d_stop;
    }
    accumulate_category(cat_dets, npig, ws, acc, k);
  }

  const int all = 0, m100 = kNumMaxDet - 1;
  result.stats = {summarize_ap(acc, std::nullopt, all, m100),
                  summarize_ap(acc, 0.5, all, m100),
                  summarize_ap(acc, 0.75, all, m100),
                  summarize_ap(acc, std::nullopt, 1, m100),
                  summarize_ap(acc, std::nullopt, 2, m100),
                  summarize_ap(acc, std::nullopt, 3, m100),
                  summarize_ar(acc, all, 0),
                  summarize_ar(acc, all, 1),
                  summarize_ar(acc, all, m100),
                  summarize_ar(acc, 1, m100),
                  summarize_ar(acc, 2, m100),
                  summarize_ar(acc, 3, m100)};
  for (int k = 0; k < K; ++k) {
    Mean mean;
    for (int t = 0; t < kNumIou; ++t)
      for (int r = 0; r < kNumRec; ++r) mean.add(acc.p(t, r, k, all, m100));
    result.per_category_ap[cat_ids[k]] = mean.value();
  }
  return result;
}

std::string format_summary(const CocoEvalResult& result) {
  struct Line {
    bool ap;
    const char* iou;
    int area;
    int max_dets;
  };
  static const Line lines[12] = {
      {true, "0.50:0.95", 0, 100}, {true, "0.50", 0, 100},      {true, "0.75", 0, 100},
      {true, "0.50:0.95", 1, 100}, {true, "0.50:0.95", 2, 100}, {true, "0.50:0.95", 3, 100},
      {false, "0.50:0.95", 0, 1},  {false, "0.50:0.95", 0, 10}, {false, "0.50:0.95", 0, 100},
      {false, "0.50:0.95", 1, 100}, {false, "0.50:0.95", 2, 100}, {false, "0.50:0.95", 3, 100}};
  std::string out;
  char buf[160];
  for (int i = 0; i < 12; ++i) {
    const Line& l = lines[i];
    // ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou,
                  kAreaLabels[l.area], l.max_dets, result.stats[i]);
    out += buf;
  }
  return out;
}

}  // namespace detr::datasets
