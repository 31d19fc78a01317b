#include "datasets/eval_tables.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <tuple>

namespace detr::datasets {

namespace {

// A CSV field: quoted when it holds a comma, quote or line break (quotes doubled).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void append_figures(std::string& line, const CategoryFigures& f) {
  for (double v : {f.ap, f.ap50, f.ar100}) line += "," + number(v);
}

double box_area(const std::array<double, 4>& b) { return b[2] * b[3]; }

double intersection(const std::array<double, 4>& a, const std::array<double, 4>& b) {
  const double w = std::min(a[0] + a[2], b[0] + b[2]) - std::max(a[0], b[0]);
  const double h = std::min(a[1] + a[3], b[1] + b[3]) - std::max(a[1], b[1]);
  return w > 0 && h > 0 ? w * h : 0;
}

double iou_of(const std::array<double, 4>& a, const std::array<double, 4>& b) {
  const double i = intersection(a, b), u = box_area(a) + box_area(b) - i;
  return u > 0 ? i / u : 0;
}

}  // namespace

std::vector<PerClassRow> per_class_rows(const std::vector<CocoCategory>& categories,
                                        const CocoEvalResult& bbox,
                                        const CocoEvalResult* segm) {
  std::map<int64_t, std::string> names;
  for (const auto& c : categories) names[c.id] = c.name;
  std::vector<PerClassRow> rows;
  for (const auto& [id, figures] : bbox.per_category) {
    PerClassRow row{names.count(id) ? names[id] : std::to_string(id), id, figures, std::nullopt};
    if (segm) {
      const auto it = segm->per_category.find(id);
      row.segm = it == segm->per_category.end() ? CategoryFigures{} : it->second;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string per_class_csv(const std::vector<PerClassRow>& rows) {
  const bool segm = !rows.empty() && rows.front().segm.has_value();
  std::string out = std::string("class,id,AP,AP50,AR100") + (segm ? ",segm_AP,segm_AP50,segm_AR100" : "") + "\n";
  for (const auto& r : rows) {
    std::string line = csv_field(r.name) + "," + std::to_string(r.id);
    append_figures(line, r.bbox);
    if (segm) append_figures(line, r.segm.value_or(CategoryFigures{}));
    out += line + "\n";
  }
  return out;
}

std::string pr_curves_csv(const std::vector<PerClassRow>& rows,
                          const CocoEvalResult& bbox,
                          const CocoEvalResult* segm) {
  std::string out = std::string("class,id,iou,recall,precision") + (segm ? ",segm_precision" : "") + "\n";
  auto curves = [&](const std::string& name, const std::string& id, const CategoryFigures& box,
                    const CategoryFigures* mask) {
    for (const bool at50 : {true, false})
      for (int r = 0; r <= 100; ++r) {
        char recall[8];
        std::snprintf(recall, sizeof recall, "%.2f", r / 100.0);
        out += csv_field(name) + "," + id + "," + (at50 ? "0.50" : "0.50:0.95") + "," + recall + "," +
               number(at50 ? box.precision50[r] : box.precision[r]);
        if (segm) out += "," + number(mask ? (at50 ? mask->precision50[r] : mask->precision[r]) : -1.0);
        out += "\n";
      }
  };
  for (const auto& row : rows) curves(row.name, std::to_string(row.id), row.bbox, row.segm ? &*row.segm : nullptr);
  curves("all", "", bbox.all, segm ? &segm->all : nullptr);
  return out;
}

ConfusionMatrix confusion_matrix(const CocoDataset& gt,
                                 const std::vector<CocoResult>& detections,
                                 double score_threshold,
                                 double iou) {
  ConfusionMatrix m;
  m.classes = gt.categories;
  m.iou = iou;
  m.score_threshold = score_threshold;
  const size_t n = m.classes.size(), background = n;
  m.counts.assign(n + 1, std::vector<int64_t>(n + 1, 0));
  std::map<int64_t, size_t> index;
  for (size_t k = 0; k < n; ++k) index[m.classes[k].id] = k;
  std::map<int64_t, std::vector<const CocoResult*>> by_image;
  for (const auto& d : detections)
    if (d.score >= score_threshold && index.count(d.category_id)) by_image[d.image_id].push_back(&d);
  for (auto& [image, dets] : by_image) {  // COCOeval's maxDets: an image's 100 best (time and memory bounded)
    std::stable_sort(dets.begin(), dets.end(),
                     [](const CocoResult* a, const CocoResult* b) { return a->score > b->score; });
    if (dets.size() > kConfusionMaxDets) dets.resize(kConfusionMaxDets);
  }
  for (const auto& rec : gt.images) {
    std::vector<const CocoObject*> boxes, crowd;
    for (const auto& o : rec.objects)
      if (index.count(o.category_id)) (o.iscrowd ? crowd : boxes).push_back(&o);
    const auto found = by_image.find(rec.id);
    const std::vector<const CocoResult*> none;
    const auto& dets = found == by_image.end() ? none : found->second;
    // Every candidate pair, best IoU first (then higher score, then the detection first in score order).
    std::vector<std::tuple<double, double, size_t, size_t>> pairs;  // iou, score, object, detection
    for (size_t g = 0; g < boxes.size(); ++g)
      for (size_t d = 0; d < dets.size(); ++d)
        if (const double v = iou_of(boxes[g]->bbox, dets[d]->bbox); v >= iou)
          pairs.emplace_back(v, dets[d]->score, g, d);
    std::sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) {
      return std::make_tuple(-std::get<0>(a), -std::get<1>(a), std::get<3>(a), std::get<2>(a)) <
             std::make_tuple(-std::get<0>(b), -std::get<1>(b), std::get<3>(b), std::get<2>(b));
    });
    std::vector<char> gt_used(boxes.size(), 0), dt_used(dets.size(), 0);
    for (const auto& [v, score, g, d] : pairs) {
      if (gt_used[g] || dt_used[d]) continue;
      gt_used[g] = dt_used[d] = 1;
      ++m.counts[index[boxes[g]->category_id]][index[dets[d]->category_id]];
    }
    for (size_t g = 0; g < boxes.size(); ++g)
      if (!gt_used[g]) ++m.counts[index[boxes[g]->category_id]][background];
    for (size_t d = 0; d < dets.size(); ++d) {
      if (dt_used[d]) continue;
      const double area = box_area(dets[d]->bbox);
      const bool in_crowd = std::any_of(crowd.begin(), crowd.end(), [&](const CocoObject* c) {
        return c->category_id == dets[d]->category_id && area > 0 && intersection(c->bbox, dets[d]->bbox) / area >= iou;
      });
      if (!in_crowd) ++m.counts[background][index[dets[d]->category_id]];
    }
  }
  return m;
}

std::string confusion_csv(const ConfusionMatrix& m) {
  // A class whose name another class or "background" has is told apart by its id.
  std::map<std::string, int> uses{{"background", 1}};
  for (const auto& c : m.classes) ++uses[c.name];
  auto name = [&](const CocoCategory& c) {
    return csv_field(uses[c.name] > 1 ? c.name + " (id " + std::to_string(c.id) + ")" : c.name);
  };
  std::string out = "ground_truth\\detected";
  for (const auto& c : m.classes) out += "," + name(c);
  out += ",background\n";
  for (size_t r = 0; r < m.counts.size(); ++r) {
    out += r < m.classes.size() ? name(m.classes[r]) : std::string("background");
    for (int64_t v : m.counts[r]) out += "," + std::to_string(v);
    out += "\n";
  }
  return out;
}

}  // namespace detr::datasets
