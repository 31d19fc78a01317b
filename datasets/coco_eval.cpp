// COCO bbox and segm evaluation, a C++ rendering of pycocotools' COCOeval (evaluate, accumulate, summarize)
// and of the bbox and segmentation branches of COCO.loadRes; the ground truth comes from datasets/coco.cpp's
// reader, masks from datasets/coco_mask.cpp. See coco_eval.h for the contract; the comments below name the
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

// ---- loading results (the ground truth is datasets/coco.h's) ---------------------------------------

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error(source + ": " + what);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open results file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "cannot read results file");
  return text.str();
}

// One result of the array, for error messages: "<source>: results[3]: <what>".
struct Entry {
  const std::string& source;
  size_t index;
  const json& value;

  [[noreturn]] void fail(const std::string& what) const {
    detr::datasets::fail(source, "results[" + std::to_string(index) + "]: " + what);
  }
  const json& field(const char* key) const {
    auto it = value.find(key);
    if (it == value.end()) fail(std::string("missing field '") + key + "'");
    return *it;
  }
  int64_t integer(const char* key) const {
    const json& v = field(key);
    if (const auto i = exact_int64(v)) return *i;
    fail(std::string("'") + key + "' must be an integer within int64, got " + json_preview(v));
  }
  double number(const char* key) const {
    const json& v = field(key);
    if (!v.is_number()) fail(std::string("'") + key + "' must be a number, got " + json_preview(v));
    return v.get<double>();
  }
  std::array<double, 4> bbox() const {
    const json& v = field("bbox");
    if (!v.is_array() || v.size() != 4 || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number(); }))
      fail("'bbox' must be [x, y, width, height] numbers, got " + json_preview(v));
    return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>(), v[3].get<double>()};
  }
  // The result's mask on its image of height x width, read as COCO.annToRLE reads one (the codec's
  // errors name the field: "segmentation.size: ...").
  Rle mask(const CocoImageRecord& image) const {
    if (image.height < 1 || image.width < 1)
      fail("'segmentation' needs the height and width of image id " + std::to_string(image.id) +
           ", which the ground truth does not declare");
    try {
      return rle_from_segmentation(field("segmentation"), image.height, image.width);
    } catch (const std::runtime_error& e) {
      fail(e.what());
    }
  }
};

// COCO.loadRes's two branches for detections, chosen by the first result: with a non-empty `bbox`
// (area w*h; a segmentation where given), else with a `segmentation` (compressed RLE; area and, where
// no box is given, bbox from the mask).
enum class ResultKind { box, mask };

bool has_box(const json& result) {
  const auto it = result.find("bbox");
  return it != result.end() && !(it->is_array() && it->empty());  // loadRes: not anns[0]['bbox'] == []
}

ResultKind result_kind(const Entry& first) {
  if (!first.value.is_object()) first.fail("expected a JSON object, got " + json_preview(first.value));
  if (has_box(first.value)) return ResultKind::box;
  if (first.value.contains("segmentation")) return ResultKind::mask;
  first.fail("missing field 'bbox' (or 'segmentation' for mask results)");
}

CocoResult read_result(const Entry& e,
                       ResultKind kind,
                       const std::unordered_map<int64_t, const CocoImageRecord*>& images) {
  if (!e.value.is_object()) e.fail("expected a JSON object, got " + json_preview(e.value));
  CocoResult det;
  det.image_id = e.integer("image_id");
  det.category_id = e.integer("category_id");
  const auto image = images.find(det.image_id);
  if (kind == ResultKind::box) det.bbox = e.bbox();
  det.score = e.number("score");
  if (image == images.end())
    e.fail("image_id " + std::to_string(det.image_id) + " is not an image of the ground truth");
  if (kind == ResultKind::box) {
    if (e.value.contains("segmentation")) det.segmentation = e.mask(*image->second);
    return det;
  }
  const json& seg = e.field("segmentation");
  if (!seg.is_object() || !seg.contains("counts") || !seg["counts"].is_string())
    e.fail(
        "'segmentation' must be a compressed RLE {\"size\": [height, width], \"counts\": \"...\"} (COCO.loadRes "
        "reads no other mask without a bbox), got " +
        json_preview(seg));
  det.segmentation = e.mask(*image->second);
  det.area = static_cast<double>(area(*det.segmentation));
  det.bbox = has_box(e.value) ? e.bbox() : to_bbox(*det.segmentation);
  return det;
}

}  // namespace

std::vector<CocoResult> parse_coco_results(std::string_view json_text,
                                           const std::string& source,
                                           const CocoDataset& gt) {
  json doc;
  try {
    doc = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    fail(source, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!doc.is_array()) fail(source, "expected a JSON array of results");
  std::vector<CocoResult> results;
  if (doc.empty()) return results;
  std::unordered_map<int64_t, const CocoImageRecord*> images;
  for (const auto& image : gt.images) images.emplace(image.id, &image);
  const ResultKind kind = result_kind(Entry{source, 0, doc[0]});
  results.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) results.push_back(read_result(Entry{source, i, doc[i]}, kind, images));
  return results;
}

std::vector<CocoResult> load_coco_results(const std::string& path, const CocoDataset& gt) {
  return parse_coco_results(read_text_file(path), path, gt);
}

CocoResult make_segm_result(int64_t image_id, int64_t category_id, Rle mask, double score) {
  CocoResult det;
  det.image_id = image_id;
  det.category_id = category_id;
  det.score = score;
  det.bbox = to_bbox(mask);
  det.area = static_cast<double>(area(mask));
  det.segmentation = std::move(mask);
  return det;
}

const char* iou_type_name(IouType type) { return type == IouType::segm ? "segm" : "bbox"; }

IouType parse_iou_type(const std::string& name) {
  if (name == "bbox") return IouType::bbox;
  if (name == "segm") return IouType::segm;
  throw std::invalid_argument("IoU type must be bbox or segm, got '" + name + "'");
}

// ---- evaluation ------------------------------------------------------------------------------------

namespace {

constexpr int kNumIou = 10;    // T
constexpr int kNumRec = 101;   // R
constexpr int kNumArea = 4;    // A: all, small, medium, large
constexpr int kNumMaxDet = 3;  // M
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

Grouped group_by_cell(const std::vector<int32_t>& cat, const std::vector<int32_t>& img, int num_cats, int num_imgs) {
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

// A ground-truth annotation as evaluateImg reads it: evaluate_bbox's flat view of the objects of
// gt.images.
struct GtBox {
  std::array<double, 4> bbox;
  double area;
  int64_t id;
  bool iscrowd;
  const CocoObject* object;  // for its mask (segm)
};

// A detection's area as COCO.loadRes sets it: the mask's for results without a box, else w*h.
double detection_area(const CocoResult& d) { return d.area ? *d.area : d.bbox[2] * d.bbox[3]; }

// The evaluation's flat view (pycocotools' _prepare): dense image and category indices (sorted ids; -1:
// not evaluated), the ground truth in getAnnIds order (image, then file order), detections' scores and
// areas by index (read in every cell: kept apart from the larger CocoResult).
struct Prepared {
  std::vector<int64_t> img_ids, cat_ids;
  std::vector<const CocoImageRecord*> images;  // by image index
  std::vector<GtBox> gts;
  std::vector<int32_t> gt_img, gt_cat, dt_img, dt_cat;
  std::vector<double> dt_score, dt_area;
};

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
  std::vector<uint32_t> dets;      // detection indices of the cell, score order
  std::vector<double> ious;        // D x G, row-major by detection
  std::vector<uint32_t> gt_order;  // per area: non-ignored ground truth first (stable)
  std::vector<uint8_t> gt_ignore;  // per area, in gt_order
  std::vector<uint8_t> taken;      // per threshold: ground truth already matched (gtMatches > 0)
  std::vector<uint32_t> sorted;    // accumulate: category's detections in score order
  std::vector<uint32_t> flags;     // accumulate: matched | ignored << 16 of the kept detections
  std::vector<double> rc, pr;      // accumulate: recall and precision at the true positives
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
void stable_sort_by_score(std::vector<uint32_t>& idx, const std::vector<double>& scores) {
  const auto higher = [&](uint32_t a, uint32_t b) { return scores[a] > scores[b]; };
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

// computeIoU for bbox: maskUtils.iou on boxes, [D x G] row-major by detection.
struct BoxIou {
  const std::vector<GtBox>& gts;
  const std::vector<CocoResult>& dts;
  void set_image(int32_t) {}
  void operator()(const std::vector<uint32_t>& dets, const uint32_t* gt_idx, size_t G, std::vector<double>& ious) {
    ious.resize(dets.size() * G);
    for (size_t d = 0; d < dets.size(); ++d)
      for (size_t g = 0; g < G; ++g)
        ious[d * G + g] = box_iou(dts[dets[d]].bbox, gts[gt_idx[g]].bbox, gts[gt_idx[g]].iscrowd);
  }
};

// computeIoU for segm: maskUtils.iou on the cell's masks, the objects' by annToRLE (object_rle) and the
// detections' as given (loadRes gives a box result the filled box), on their image of height x width.
class MaskIou {
 public:
  MaskIou(const std::vector<GtBox>& gts,
          const std::vector<CocoResult>& dts,
          const std::vector<const CocoImageRecord*>& images,
          std::string file)
      : gts_(gts), dts_(dts), images_(images), file_(std::move(file)) {}
  void set_image(int32_t image) { image_ = images_[image]; }
  void operator()(const std::vector<uint32_t>& dets, const uint32_t* gt_idx, size_t G, std::vector<double>& ious) {
    ious.assign(dets.size() * G, 0.0);
    if (dets.empty() || G == 0) return;
    const int64_t h = image_->height, w = image_->width;
    gt_masks_.clear();
    crowd_.clear();
    for (size_t g = 0; g < G; ++g) {
      const GtBox& gt = gts_[gt_idx[g]];
      try {
        gt_masks_.push_back(object_rle(*gt.object, h, w));
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(file_ + e.what());
      }
      crowd_.push_back(gt.iscrowd);
    }
    dt_masks_.clear();
    for (uint32_t d : dets) {
      const CocoResult& dt = dts_[d];
      try {
        dt_masks_.push_back(dt.segmentation ? *dt.segmentation : rle_from_box(dt.bbox, h, w));
      } catch (const std::runtime_error& e) {
        throw std::runtime_error("detection " + std::to_string(d) + ": " + e.what());
      }
    }
    ious = iou(dt_masks_, gt_masks_, crowd_);
  }

 private:
  const std::vector<GtBox>& gts_;
  const std::vector<CocoResult>& dts_;
  const std::vector<const CocoImageRecord*>& images_;  // by dense image index
  std::string file_;                                   // "<annotation file>: " for errors in the ground truth
  const CocoImageRecord* image_ = nullptr;
  std::vector<Rle> gt_masks_, dt_masks_;
  std::vector<bool> crowd_;
};

// COCOeval.evaluateImg for one (image, category) cell and all area ranges at maxDet 100: greedy matching
// per IoU threshold of detections (score order, stable) to ground truth (ignored last, stable), with the
// IoUs of `compute_ious` (BoxIou or MaskIou). Appends the cell's detections to `out` and adds its
// non-ignored ground truth to `npig`.
template <class IouFn>
void evaluate_cell(const Prepared& p,
                   const uint32_t* gt_idx,
                   size_t G,
                   const uint32_t* dt_idx,
                   size_t num_dt,
                   IouFn& compute_ious,
                   Workspace& ws,
                   std::vector<EvalDet>& out,
                   std::array<int64_t, kNumArea>& npig) {
  const std::vector<GtBox>& gts = p.gts;
  auto& dets = ws.dets;
  dets.assign(dt_idx, dt_idx + num_dt);
  stable_sort_by_score(dets, p.dt_score);
  if (dets.size() > static_cast<size_t>(kMaxDets.back())) dets.resize(kMaxDets.back());
  const size_t D = dets.size();
  compute_ious(dets, gt_idx, G, ws.ious);

  const size_t first = out.size();
  for (size_t d = 0; d < D; ++d) out.push_back({p.dt_score[dets[d]], static_cast<uint32_t>(d), {}, {}});

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
      ws.taken.resize(G);
      std::fill(ws.taken.begin(), ws.taken.end(), uint8_t{0});
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
    // Unmatched detections outside the area range are ignored (a detection's area: COCO.loadRes's).
    for (size_t d = 0; d < D; ++d) {
      EvalDet& e = out[first + d];
      if (outside(p.dt_area[dets[d]], a)) e.ignored[a] |= static_cast<uint16_t>(~e.matched[a] & kAllIou);
    }
  }
}

// Precision [T][R][K][A][M] and recall [T][K][A][M], -1 where a setting has no ground truth.
struct Accumulated {
  int num_cats = 0;
  std::vector<double> precision, recall;
  std::vector<int64_t> num_gt;  // [K] ground truth that counts, area all
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
void accumulate_threshold(
    const std::vector<uint32_t>& flags, int t, int64_t npig, Workspace& ws, Accumulated& acc, int k, int a, int m) {
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
      rc.push_back(tpd / static_cast<double>(npig));        // rc = tp / npig
      pr.push_back(tpd / (static_cast<double>(n) + kEps));  // pr = tp / (fp + tp + np.spacing(1))
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

void accumulate_category(const std::vector<EvalDet>& dets,
                         const std::array<int64_t, kNumArea>& npig,
                         Workspace& ws,
                         Accumulated& acc,
                         int k) {
  // One stable sort serves every (area, maxDet): dropping ranks >= maxDet keeps the relative order.
  auto& sorted = ws.sorted;
  sorted.resize(dets.size());
  std::iota(sorted.begin(), sorted.end(), 0u);
  std::stable_sort(sorted.begin(), sorted.end(), [&](uint32_t a, uint32_t b) { return dets[a].score > dets[b].score; });
  uint32_t max_rank = 0;
  for (const auto& d : dets) max_rank = std::max(max_rank, d.rank);
  acc.num_gt[static_cast<size_t>(k)] = npig[0];
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

namespace {

std::string file_prefix(const CocoDataset& gt) {
  return gt.annotation_file.empty() ? "" : gt.annotation_file.string() + ": ";
}

// segm reads masks of every image's size (annToRLE needs height and width); a detection's mask must
// have its image's size.
void check_mask_sizes(const CocoDataset& gt, const Prepared& p, const std::vector<CocoResult>& dts) {
  std::vector<uint8_t> used(p.images.size(), 0);
  for (int32_t img : p.gt_img) used[img] = 1;
  for (size_t i = 0; i < dts.size(); ++i) {
    if (p.dt_cat[i] >= 0) used[p.dt_img[i]] = 1;
    const auto& image = *p.images[p.dt_img[i]];
    const auto& mask = dts[i].segmentation;
    if (mask && (mask->height != image.height || mask->width != image.width))
      throw std::runtime_error("detection " + std::to_string(i) + ": segmentation size [" +
                               std::to_string(mask->height) + ", " + std::to_string(mask->width) +
                               "] differs from image id " + std::to_string(image.id) + "'s [" +
                               std::to_string(image.height) + ", " + std::to_string(image.width) + "] (height, width)");
  }
  for (size_t k = 0; k < used.size(); ++k)
    if (used[k] && (p.images[k]->height < 1 || p.images[k]->width < 1))
      throw std::runtime_error(file_prefix(gt) + "image id " + std::to_string(p.images[k]->id) +
                               ": segm evaluation needs its height and width (pycocotools' annToRLE reads them)");
}

Prepared prepare(const CocoDataset& gt, const std::vector<CocoResult>& dts) {
  Prepared p;
  p.img_ids = sorted_ids(gt.images);
  p.cat_ids = sorted_ids(gt.categories);
  const IdIndex img_index(p.img_ids), cat_index(p.cat_ids);
  p.images.assign(p.img_ids.size(), nullptr);
  for (const auto& image : gt.images) p.images[img_index.find(image.id)] = &image;
  // Detections: an unknown image is an error (COCO.loadRes asserts), an unknown category is ignored.
  p.dt_img.resize(dts.size());
  p.dt_cat.resize(dts.size());
  p.dt_score.resize(dts.size());
  p.dt_area.resize(dts.size());
  for (size_t i = 0; i < dts.size(); ++i) {
    const auto& d = dts[i];
    if (!std::isfinite(d.score)) throw std::runtime_error("detection " + std::to_string(i) + ": score is not finite");
    p.dt_score[i] = d.score;
    p.dt_area[i] = detection_area(d);
    p.dt_img[i] = img_index.find(d.image_id);
    if (p.dt_img[i] < 0)
      throw std::runtime_error("detection " + std::to_string(i) + ": image_id " + std::to_string(d.image_id) +
                               " is not an image of the ground truth");
    p.dt_cat[i] = cat_index.find(d.category_id);
  }
  // Ground truth: every object of every image, in image then file order (pycocotools' getAnnIds order).
  size_t num_gt = 0;
  for (const auto& image : gt.images) num_gt += image.objects.size();
  p.gts.reserve(num_gt);
  p.gt_img.reserve(num_gt);
  p.gt_cat.reserve(num_gt);
  for (const auto& image : gt.images) {
    const int32_t img = img_index.find(image.id);
    for (const auto& o : image.objects) {
      p.gts.push_back({o.bbox, o.area, o.id, o.iscrowd, &o});
      p.gt_img.push_back(img);
      p.gt_cat.push_back(cat_index.find(o.category_id));
    }
  }
  return p;
}

// evaluate() and accumulate() over every category: precision and recall per setting.
template <class IouFn>
Accumulated evaluate_categories(const Prepared& p, IouFn& compute_ious) {
  const int I = static_cast<int>(p.img_ids.size()), K = static_cast<int>(p.cat_ids.size());
  const Grouped gts = group_by_cell(p.gt_cat, p.gt_img, K, I);
  const Grouped dtg = group_by_cell(p.dt_cat, p.dt_img, K, I);
  Accumulated acc;
  acc.num_cats = K;
  acc.precision.assign(static_cast<size_t>(kNumIou) * kNumRec * K * kNumArea * kNumMaxDet, -1.0);
  acc.recall.assign(static_cast<size_t>(kNumIou) * K * kNumArea * kNumMaxDet, -1.0);
  acc.num_gt.assign(static_cast<size_t>(K), 0);
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
      const int32_t image = std::min(g < g_end ? p.gt_img[*g] : I, d < d_end ? p.dt_img[*d] : I);
      const uint32_t* g_stop = g;
      while (g_stop < g_end && p.gt_img[*g_stop] == image) ++g_stop;
      const uint32_t* d_stop = d;
      while (d_stop < d_end && p.dt_img[*d_stop] == image) ++d_stop;
      compute_ious.set_image(image);
      evaluate_cell(p, g, static_cast<size_t>(g_stop - g), d, static_cast<size_t>(d_stop - d), compute_ious, ws,
                    cat_dets, npig);
      g = g_stop;
      d = d_stop;
    }
    accumulate_category(cat_dets, npig, ws, acc, k);
  }
  return acc;
}

// The figures of categories `ks` together (area all, maxDets 100), as summarize() averages.
CategoryFigures category_figures(Accumulated& acc, const std::vector<int>& ks) {
  const int all = 0, m100 = kNumMaxDet - 1, t50 = iou_index(0.5);
  CategoryFigures f;
  Mean ap, ap50, ar;  // summed in summarize_ap's order (t, r, k)
  for (int t = 0; t < kNumIou; ++t) {
    for (int r = 0; r < kNumRec; ++r)
      for (int k : ks) {
        ap.add(acc.p(t, r, k, all, m100));
        if (t == t50) ap50.add(acc.p(t, r, k, all, m100));
      }
    for (int k : ks) ar.add(acc.rec(t, k, all, m100));
  }
  for (int r = 0; r < kNumRec; ++r) {
    Mean at50, over;
    for (int k : ks) {
      at50.add(acc.p(t50, r, k, all, m100));
      for (int t = 0; t < kNumIou; ++t) over.add(acc.p(t, r, k, all, m100));
    }
    f.precision50[r] = at50.value();
    f.precision[r] = over.value();
  }
  for (int k : ks) f.num_gt += acc.num_gt[static_cast<size_t>(k)];
  f.ap = ap.value();
  f.ap50 = ap50.value();
  f.ar100 = ar.value();
  return f;
}

// summarize(): the 12 stats, and the figures per category.
CocoEvalResult summarize(Accumulated& acc, const std::vector<int64_t>& cat_ids) {
  CocoEvalResult result;
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
  for (int k = 0; k < acc.num_cats; ++k) {
    result.per_category[cat_ids[k]] = category_figures(acc, {k});
    result.per_category_ap[cat_ids[k]] = result.per_category[cat_ids[k]].ap;
  }
  std::vector<int> every(static_cast<size_t>(acc.num_cats));
  for (int k = 0; k < acc.num_cats; ++k) every[k] = k;
  result.all = category_figures(acc, every);
  return result;
}

}  // namespace

CocoEvalResult evaluate(const CocoDataset& gt, const std::vector<CocoResult>& detections, IouType iou_type) {
  if (detections.empty()) {  // see coco_eval.h: "nothing to evaluate"
    CocoEvalResult result;
    result.stats.fill(-1.0);
    return result;
  }
  const Prepared p = prepare(gt, detections);
  Accumulated acc;
  if (iou_type == IouType::segm) {
    check_mask_sizes(gt, p, detections);
    MaskIou ious(p.gts, detections, p.images, file_prefix(gt));
    acc = evaluate_categories(p, ious);
  } else {
    BoxIou ious{p.gts, detections};
    acc = evaluate_categories(p, ious);
  }
  return summarize(acc, p.cat_ids);
}

CocoEvalResult evaluate_bbox(const CocoDataset& gt, const std::vector<CocoResult>& detections) {
  return evaluate(gt, detections, IouType::bbox);
}

CocoEvalResult evaluate_segm(const CocoDataset& gt, const std::vector<CocoResult>& detections) {
  return evaluate(gt, detections, IouType::segm);
}

std::string format_summary(const CocoEvalResult& result) {
  struct Line {
    bool ap;
    const char* iou;
    int area;
    int max_dets;
  };
  static const Line lines[12] = {
      {true, "0.50:0.95", 0, 100},  {true, "0.50", 0, 100},       {true, "0.75", 0, 100},
      {true, "0.50:0.95", 1, 100},  {true, "0.50:0.95", 2, 100},  {true, "0.50:0.95", 3, 100},
      {false, "0.50:0.95", 0, 1},   {false, "0.50:0.95", 0, 10},  {false, "0.50:0.95", 0, 100},
      {false, "0.50:0.95", 1, 100}, {false, "0.50:0.95", 2, 100}, {false, "0.50:0.95", 3, 100}};
  std::string out;
  char buf[160];
  for (int i = 0; i < 12; ++i) {
    const Line& l = lines[i];
    // ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, kAreaLabels[l.area],
                  l.max_dets, result.stats[i]);
    out += buf;
  }
  return out;
}

}  // namespace detr::datasets
