// COCO masks: a C++ rendering of cocoapi's common/maskApi.c and of COCO.annToRLE / frPyObjects
// (PythonAPI/pycocotools/{coco.py,_mask.pyx}). See coco_mask.h for the contract; each function below
// names the maskApi routine it follows, with the same arithmetic (int truncation, uint32 counts,
// evaluation order), so that results agree bit for bit.
#include "datasets/coco_mask.h"
#include "datasets/json_number.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <tuple>
#include <stdexcept>
#include <utility>

namespace detr::datasets {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw std::runtime_error(field + ": " + what);
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string size_text(int64_t height, int64_t width) {
  return "[" + std::to_string(height) + ", " + std::to_string(width) + "]";
}

void check_size(int64_t height, int64_t width, const std::string& field) {
  if (height < 1 || width < 1 || height > kMaxMaskPixels || width > kMaxMaskPixels || height * width > kMaxMaskPixels)
    fail(field, "size " + size_text(height, width) + " (height, width) is not a mask of 1 to " +
                    std::to_string(kMaxMaskPixels) + " pixels");
}

// Counts of a mask of `pixels` pixels: at most pixels + 1 runs summing to pixels (sum kept in 64 bits).
void check_counts(const std::vector<uint32_t>& counts, int64_t pixels, const std::string& field) {
  if (static_cast<int64_t>(counts.size()) > pixels + 1)
    fail(field,
         std::to_string(counts.size()) + " runs, more than a mask of " + std::to_string(pixels) + " pixels can have");
  uint64_t sum = 0;
  for (uint32_t c : counts) sum += c;
  if (sum != static_cast<uint64_t>(pixels))
    fail(field, "runs sum to " + std::to_string(sum) + " pixels, expected height*width = " + std::to_string(pixels));
}

std::string at(const std::string& field, size_t i) { return field + "[" + std::to_string(i) + "]"; }

void check_rle(const Rle& rle, const std::string& field) {
  check_size(rle.height, rle.width, field);
  check_counts(rle.counts, rle.height * rle.width, field + ".counts");
}

// ---- polygons: rleFrPoly ----------------------------------------------------------------------------

constexpr double kScale = 5;  // rleFrPoly's upsampling

// a * b rounded to a double before anything is added to it. A fused multiply-add, which compilers
// emit on FMA hardware under -ffp-contract=fast (GCC's default outside ISO mode), rounds once and
// would differ from maskApi in the last bit, and so in a boundary pixel.
double product(double a, double b) {
  volatile double p = a * b;
  return p;
}

// The points maskApi puts on one edge of the 5x upsampled polygon (start to end, both included),
// passed to visit(u, v). An edge of one point (a repeated vertex) has slope 0/0 in maskApi; its
// (undefined) v never reaches the mask: the pairs around it have no u step at a pixel column.
template <class Visit>
void walk_edge(int xs, int ys, int xe, int ye, Visit&& visit) {
  const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
  const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
  if (flip) {
    std::swap(xs, xe);
    std::swap(ys, ye);
  }
  if (dx >= dy) {
    const double s = dx == 0 ? 0.0 : static_cast<double>(ye - ys) / dx;
    for (int d = 0; d <= dx; ++d) {
      const int t = flip ? dx - d : d;
      visit(t + xs, static_cast<int>(ys + product(s, t) + .5));
    }
  } else {
    const double s = static_cast<double>(xe - xs) / dy;
    for (int d = 0; d <= dy; ++d) {
      const int t = flip ? dy - d : d;
      visit(static_cast<int>(xs + product(s, t) + .5), t + ys);
    }
  }
}

// rleFrPoly's "y-boundary" step for consecutive points (pu, pv) -> (u, v) with u != pu: where the
// step crosses a pixel column's centre, the boundary's pixel x*h + y (y rounded up, clamped to [0, h]).
void keep_crossing(int pu, int pv, int u, int v, int64_t h, int64_t w, std::vector<uint32_t>& out) {
  double xd = u < pu ? u : u - 1;
  xd = (xd + .5) / kScale - .5;
  if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) return;
  double yd = v < pv ? v : pv;
  yd = (yd + .5) / kScale - .5;
  if (yd < 0)
    yd = 0;
  else if (yd > static_cast<double>(h))
    yd = static_cast<double>(h);
  yd = std::ceil(yd);
  out.push_back(static_cast<uint32_t>(static_cast<int64_t>(xd) * h + static_cast<int64_t>(yd)));
}

// Vertex coordinates scaled by 5 and truncated as maskApi does ((int)(5*c + .5), towards zero), the
// polygon closed by repeating the first vertex. `xy` holds 2*k numbers, already range-checked.
int upsample(double c) { return static_cast<int>(product(kScale, c) + .5); }

std::vector<std::pair<int, int>> upsampled_vertices(const std::vector<double>& xy, size_t k) {
  std::vector<std::pair<int, int>> p(k + 1, {0, 0});
  for (size_t j = 0; j < k; ++j) p[j] = {upsample(xy[2 * j]), upsample(xy[2 * j + 1])};
  p[k] = p[0];
  return p;
}

// The boundary points of rleFrPoly, kept as they are found instead of stored (maskApi allocates
// them all), so memory follows the mask rather than the polygon's extent.
std::vector<uint32_t> column_crossings(const std::vector<std::pair<int, int>>& p, int64_t h, int64_t w) {
  std::vector<uint32_t> out;
  bool first = true;
  int pu = 0, pv = 0;
  auto visit = [&](int u, int v) {
    if (!first && u != pu) keep_crossing(pu, pv, u, v, h, w, out);
    first = false;
    pu = u;
    pv = v;
  };
  for (size_t j = 0; j + 1 < p.size(); ++j) walk_edge(p[j].first, p[j].second, p[j + 1].first, p[j + 1].second, visit);
  return out;
}

// rleFrPoly's last step: the sorted boundary pixels (plus h*w) become run lengths; a zero-length run
// (two boundaries at one pixel) joins its neighbours.
std::vector<uint32_t> runs_from_crossings(std::vector<uint32_t> a, uint32_t pixels) {
  a.push_back(pixels);
  std::sort(a.begin(), a.end());
  for (size_t j = a.size() - 1; j > 0; --j) a[j] -= a[j - 1];
  std::vector<uint32_t> runs{a[0]};
  for (size_t j = 1; j < a.size();) {
    if (a[j] > 0) {
      runs.push_back(a[j++]);
    } else if (++j < a.size()) {
      runs.back() += a[j++];
    }
  }
  return runs;
}

void check_coordinates(const std::vector<double>& xy, const std::string& field) {
  for (size_t j = 0; j < xy.size(); ++j) {
    if (std::isfinite(xy[j]) && std::abs(xy[j]) <= kMaxPolygonCoordinate) continue;
    fail(at(field, j),
         "coordinate " + number_text(xy[j]) + (std::isfinite(xy[j]) ? " is beyond +-1e8" : " is not finite"));
  }
}

// One polygon's own checks: finite coordinates within range, and a boundary of at most
// kMaxPolygonSteps upsampled points (the points maskApi allocates), counted without storing them.
void check_polygon(const std::vector<double>& xy, const std::string& field) {
  check_coordinates(xy, field);
  const size_t k = xy.size() / 2;
  int64_t steps = 0;
  for (size_t j = 0; j < k; ++j) {
    const size_t n = (j + 1) % k;
    const int64_t dx = std::abs(int64_t{upsample(xy[2 * j])} - upsample(xy[2 * n]));
    steps += std::max(dx, std::abs(int64_t{upsample(xy[2 * j + 1])} - upsample(xy[2 * n + 1]))) + 1;
  }
  if (steps > kMaxPolygonSteps)
    fail(field, "boundary of " + std::to_string(steps) + " upsampled points, more than " +
                    std::to_string(kMaxPolygonSteps) + " (coordinates far outside the image?)");
}

// frPyObjects' rules for a polygon list (the first polygon needs more than 4 numbers: 4 read as a
// box), then each polygon's checks: everything polygon_union throws for but the image size.
void check_polygon_list(const std::vector<std::vector<double>>& polygons, const std::string& field) {
  if (polygons.empty()) fail(field, "no polygons (pycocotools' frPyObjects cannot read an empty list)");
  const size_t n0 = polygons[0].size();
  if (n0 == 4) fail(at(field, 0), "a polygon of 4 numbers, which pycocotools reads as a box and fails");
  if (n0 < 4) fail(at(field, 0), "a polygon of " + std::to_string(n0) + " numbers; pycocotools needs more than 4 here");
  for (size_t i = 0; i < polygons.size(); ++i) check_polygon(polygons[i], at(field, i));
}

// One checked polygon rasterised (rleFrPoly with k = len/2 vertices: an odd count drops the last number).
std::vector<uint32_t> polygon_runs(const std::vector<double>& xy, int64_t h, int64_t w) {
  return runs_from_crossings(column_crossings(upsampled_vertices(xy, xy.size() / 2), h, w),
                             static_cast<uint32_t>(h * w));
}

// ---- merge and iou: rleMerge, rleIou ----------------------------------------------------------------

// rleMerge for two masks of one size, step for step: a zero-length run ends the walk early there.
std::vector<uint32_t> merge_two(const std::vector<uint32_t>& A, const std::vector<uint32_t>& B, bool intersect) {
  std::vector<uint32_t> out;
  uint32_t ca = A[0], cb = B[0], cc = 0, ct = 1;
  size_t a = 1, b = 1;
  bool v = false, va = false, vb = false;
  while (ct > 0) {
    const uint32_t c = std::min(ca, cb);
    cc += c;
    ct = 0;
    ca -= c;
    if (!ca && a < A.size()) ca = A[a++], va = !va;
    ct += ca;
    cb -= c;
    if (!cb && b < B.size()) cb = B[b++], vb = !vb;
    ct += cb;
    const bool vp = v;
    v = intersect ? (va && vb) : (va || vb);
    if (v != vp || ct == 0) out.push_back(cc), cc = 0;
  }
  return out;
}

// rleArea's sum, in its uint.
uint32_t ones(const std::vector<uint32_t>& counts) {
  uint32_t a = 0;
  for (size_t j = 1; j < counts.size(); j += 2) a += counts[j];
  return a;
}

// rleMerge's step for mask `next` (named `field`) onto `acc`. With zero-length runs maskApi can stop
// early and lose pixels (and would loop forever on the next mask): refused here.
void merge_into(Rle& acc, const Rle& next, bool intersect, const std::string& field) {
  acc.counts = merge_two(acc.counts, next.counts, intersect);
  check_counts(acc.counts, acc.height * acc.width,
               field + ": pycocotools' rleMerge stops at a zero-length run here, so the union");
}

// rleIou's exact step for one pair of masks of one size.
double mask_iou(const std::vector<uint32_t>& dt, const std::vector<uint32_t>& gt, bool crowd) {
  uint32_t ca = dt[0], cb = gt[0], ct = 1, i = 0, u = 0;
  size_t a = 1, b = 1;
  bool va = false, vb = false;
  while (ct > 0) {
    const uint32_t c = std::min(ca, cb);
    if (va || vb) {
      u += c;
      if (va && vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < dt.size()) ca = dt[a++], va = !va;
    ct += ca;
    cb -= c;
    if (!cb && b < gt.size()) cb = gt[b++], vb = !vb;
    ct += cb;
  }
  if (i == 0)
    u = 1;
  else if (crowd)
    u = ones(dt);
  return static_cast<double>(i) / static_cast<double>(u);
}

// bbIou for one pair of [x, y, w, h] boxes (rleIou computes masks only where this is > 0).
double box_iou(const std::array<double, 4>& D, const std::array<double, 4>& G, bool crowd) {
  const double ga = G[2] * G[3], da = D[2] * D[3];
  const double w = std::fmin(D[2] + D[0], G[2] + G[0]) - std::fmax(D[0], G[0]);
  if (w <= 0) return 0;
  const double h = std::fmin(D[3] + D[1], G[3] + G[1]) - std::fmax(D[1], G[1]);
  if (h <= 0) return 0;
  const double i = w * h, u = crowd ? da : da + ga - i;
  return i / u;
}

// ---- annToRLE on JSON ------------------------------------------------------------------------------

std::vector<double> json_polygon(const json& p, const std::string& field) {
  if (!p.is_array()) fail(field, "expected a polygon (a list of numbers), got " + json_preview(p));
  std::vector<double> xy;
  xy.reserve(p.size());
  for (size_t j = 0; j < p.size(); ++j) {
    if (!p[j].is_number()) fail(at(field, j), "expected a number, got " + json_preview(p[j]));
    xy.push_back(p[j].get<double>());
  }
  return xy;
}

std::vector<int64_t> json_counts(const json& counts, const std::string& field) {
  std::vector<int64_t> out;
  out.reserve(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    const auto n = exact_int64(counts[i]);
    if (!n) fail(at(field, i), "expected a whole number of pixels, got " + json_preview(counts[i]));
    out.push_back(*n);
  }
  return out;
}

Rle uncompressed(const std::vector<int64_t>& counts, int64_t h, int64_t w, const std::string& field) {
  const int64_t pixels = h * w;
  Rle rle{h, w, {}};
  rle.counts.reserve(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 0 || counts[i] > pixels)
      fail(at(field, i), "run of " + std::to_string(counts[i]) +
                             " pixels is outside [0, height*width = " + std::to_string(pixels) + "]");
    rle.counts.push_back(static_cast<uint32_t>(counts[i]));
  }
  check_counts(rle.counts, pixels, field);
  return rle;
}

// rleFrString with checks: characters '0'..'o', at most 6 to a value (pycocotools decodes longer
// ones wrongly), no value cut off at the end, no negative run.
Rle compressed(const std::string& s, int64_t h, int64_t w, const std::string& field) {
  const int64_t pixels = h * w;
  Rle rle{h, w, {}};
  for (size_t p = 0; p < s.size();) {
    const size_t start = p;
    int64_t x = 0;
    for (int k = 0, more = 1; more; ++k, ++p) {
      if (p == s.size()) fail(field, "ends inside the value that starts at character " + std::to_string(start));
      const int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63) fail(field, "character " + std::to_string(p) + " is not one of pycocotools' '0'..'o'");
      if (k == 6) fail(field, "the value at character " + std::to_string(start) + " has more than 6 characters");
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = c & 0x20;
      if (!more && (c & 0x10)) x |= -(int64_t{1} << (5 * (k + 1)));
    }
    const size_t m = rle.counts.size();
    if (m > 2) x += rle.counts[m - 2];
    if (x < 0 || x > pixels)
      fail(field, "run " + std::to_string(m) + " is " + std::to_string(x) + " pixels, outside [0, " +
                      std::to_string(pixels) + "]");
    rle.counts.push_back(static_cast<uint32_t>(x));
  }
  check_counts(rle.counts, pixels, field);
  return rle;
}

// An RLE object {"counts", "size"} of an image of height x width. Compressed (string) counts only
// where annToRLE takes them: a segmentation that is itself the object, not an element of a list.
Rle rle_object(const json& obj, int64_t h, int64_t w, const std::string& field, bool allow_string) {
  const auto counts = obj.find("counts");
  const auto size = obj.find("size");
  if (counts == obj.end() || size == obj.end())
    fail(field, "an RLE object needs `counts` and `size`, got " + json_preview(obj));
  const auto sh = size->is_array() && size->size() == 2 ? exact_int64((*size)[0]) : std::nullopt;
  const auto sw = size->is_array() && size->size() == 2 ? exact_int64((*size)[1]) : std::nullopt;
  if (!sh || !sw || *sh != h || *sw != w)
    fail(field + ".size", json_preview(*size) + " differs from the image's " + size_text(h, w) + " (height, width)");
  const std::string where = field + ".counts";
  if (counts->is_array()) return uncompressed(json_counts(*counts, where), h, w, where);
  if (counts->is_string() && allow_string) return compressed(counts->get<std::string>(), h, w, where);
  fail(where, std::string("expected a list of run lengths") +
                  (allow_string ? " or a compressed string" : " (pycocotools reads no strings here)") + ", got " +
                  json_preview(*counts));
}

// The union of the polygons (frPyObjects + merge, folded one polygon at a time as rleMerge does).
Rle polygon_union(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w, const std::string& field) {
  check_size(h, w, "image");
  check_polygon_list(polygons, field);
  Rle rle{h, w, polygon_runs(polygons[0], h, w)};
  for (size_t i = 1; i < polygons.size(); ++i)
    merge_into(rle, Rle{h, w, polygon_runs(polygons[i], h, w)}, false, at(field, i));
  return rle;
}

std::vector<std::vector<double>> json_polygons(const json& seg, const std::string& field) {
  std::vector<std::vector<double>> polygons;
  polygons.reserve(seg.size());
  for (size_t i = 0; i < seg.size(); ++i) polygons.push_back(json_polygon(seg[i], at(field, i)));
  return polygons;
}

Rle rle_list(const json& seg, int64_t h, int64_t w) {
  if (seg.empty())
    fail("segmentation", "empty list: pycocotools' frPyObjects cannot read it (CVAT writes [] for boxes)");
  const json& first = seg[0];
  if (first.is_array()) return polygon_union(json_polygons(seg, "segmentation"), h, w, "segmentation");
  // frPyObjects checks len(segmentation[0]) == 4 (a box) before it looks for an RLE object.
  if (!first.is_object() || first.size() >= 4)
    fail("segmentation[0]",
         "expected a polygon (a list of numbers) or an RLE object of at most 3 keys, got " + json_preview(first));
  Rle rle;
  for (size_t i = 0; i < seg.size(); ++i) {
    if (!seg[i].is_object()) fail(at("segmentation", i), "expected an RLE object, got " + json_preview(seg[i]));
    const Rle part = rle_object(seg[i], h, w, at("segmentation", i), false);
    if (i == 0)
      rle = part;
    else
      merge_into(rle, part, false, at("segmentation", i));
  }
  return rle;
}

}  // namespace

// ---- public API --------------------------------------------------------------------------------------

Rle rle_from_segmentation(const json& segmentation, int64_t height, int64_t width) {
  check_size(height, width, "image");
  if (segmentation.is_array()) return rle_list(segmentation, height, width);
  if (segmentation.is_object()) return rle_object(segmentation, height, width, "segmentation", true);
  fail("segmentation", "expected polygons (a list) or an RLE object, got " + json_preview(segmentation));
}

Segmentation read_segmentation(const json& seg, int64_t height, int64_t width) {
  Segmentation out;
  if (seg.is_null() || (seg.is_array() && seg.empty())) return out;
  if (seg.is_array() && seg[0].is_array()) {
    out.polygons = json_polygons(seg, "segmentation");
    check_polygon_list(out.polygons, "segmentation");
    return out;
  }
  if (!seg.is_array() && !seg.is_object())
    fail("segmentation", "expected polygons (a list) or an RLE object, got " + json_preview(seg));
  if (seg.is_array() && !seg[0].is_object())
    fail("segmentation[0]", "expected a polygon (a list of numbers) or an RLE object, got " + json_preview(seg[0]));
  if (height < 1 || width < 1)
    fail("segmentation", "an RLE needs its image's height and width, which the image does not declare (" +
                             size_text(height, width) + ")");
  out.rle = rle_from_segmentation(seg, height, width);
  return out;
}

Rle segmentation_rle(const Segmentation& segmentation, int64_t height, int64_t width) {
  check_size(height, width, "image");
  if (!segmentation.polygons.empty()) return polygon_union(segmentation.polygons, height, width, "segmentation");
  if (!segmentation.rle) fail("segmentation", "empty: pycocotools' annToRLE has no mask for it");
  const Rle& rle = *segmentation.rle;
  if (rle.height != height || rle.width != width)
    fail("segmentation.size", size_text(rle.height, rle.width) + " differs from the image's " +
                                  size_text(height, width) + " (height, width)");
  check_rle(rle, "segmentation");
  return rle;
}

void check_polygons(const std::vector<std::vector<double>>& polygons) { check_polygon_list(polygons, "polygons"); }

Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t height, int64_t width) {
  return polygon_union(polygons, height, width, "polygons");
}

Rle rle_from_box(const std::array<double, 4>& xywh, int64_t height, int64_t width) {
  check_size(height, width, "image");
  const double xs = xywh[0], xe = xs + xywh[2], ys = xywh[1], ye = ys + xywh[3];
  const std::vector<double> corners{xs, ys, xs, ye, xe, ye, xe, ys};
  check_coordinates(std::vector<double>(xywh.begin(), xywh.end()), "box");
  check_polygon(corners, "box corners");
  return Rle{height, width, polygon_runs(corners, height, width)};
}

Rle rle_from_uncompressed(const std::vector<int64_t>& counts, int64_t height, int64_t width) {
  check_size(height, width, "image");
  return uncompressed(counts, height, width, "counts");
}

Rle rle_from_string(const std::string& counts, int64_t height, int64_t width) {
  check_size(height, width, "image");
  return compressed(counts, height, width, "counts");
}

// rleToString: each count (minus the one two before it, from the fourth on) in 5-bit groups, low
// first, 0x20 marking "more", offset by 48.
std::string rle_to_string(const Rle& rle) {
  check_rle(rle, "rle");
  std::string s;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    int64_t x = rle.counts[i];
    if (i > 2) x -= rle.counts[i - 2];
    for (bool more = true; more;) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;  // arithmetic shift, as maskApi's long
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

namespace {

// Foreground rectangles [x0, x1) x [y0, y1) of a box's row-major runs, in image coordinates: a run
// is at most three (its first row's part, its full rows, its last row's part).
struct Rect {
  int64_t x0, x1, y0, y1;
};
std::vector<Rect> run_rects(const std::vector<int64_t>& runs, int64_t left, int64_t top, int64_t box_width) {
  std::vector<Rect> rects;
  auto add = [&](int64_t row0, int64_t row1, int64_t x0, int64_t x1) {
    if (row1 > row0 && x1 > x0) rects.push_back({left + x0, left + x1, top + row0, top + row1});
  };
  int64_t pos = 0;
  for (size_t i = 0; i < runs.size(); pos += runs[i++]) {
    if (i % 2 == 0 || runs[i] == 0) continue;
    const int64_t end = pos + runs[i], r0 = pos / box_width, r1 = (end - 1) / box_width;
    if (r0 == r1) {
      add(r0, r0 + 1, pos % box_width, (end - 1) % box_width + 1);
      continue;
    }
    add(r0, r0 + 1, pos % box_width, box_width);
    add(r0 + 1, r1, 0, box_width);
    add(r1, r1 + 1, 0, (end - 1) % box_width + 1);
  }
  return rects;
}

// Appends a foreground run [start, start + length) (column-major) after those appended so far; the
// counts and the work are bounded.
struct RunWriter {
  Rle& rle;
  int64_t end = 0;  // column-major index after the last foreground run
  void add(int64_t start, int64_t length) {
    if (start == end && !rle.counts.empty()) {
      rle.counts.back() += static_cast<uint32_t>(length);
    } else {
      rle.counts.push_back(static_cast<uint32_t>(start - end));
      rle.counts.push_back(static_cast<uint32_t>(length));
    }
    end = start + length;
    if (static_cast<int64_t>(rle.counts.size()) > kMaxRowRunCounts)
      fail("rle", "the mask takes more than " + std::to_string(kMaxRowRunCounts) + " runs");
  }
};

// The foreground rows of one column segment: the union of the active rectangles' [y0, y1).
std::vector<std::pair<int64_t, int64_t>> row_union(const std::multiset<std::pair<int64_t, int64_t>>& active) {
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const auto& [y0, y1] : active)
    if (!spans.empty() && spans.back().second >= y0)
      spans.back().second = std::max(spans.back().second, y1);
    else
      spans.push_back({y0, y1});
  return spans;
}

}  // namespace

Rle rle_from_row_runs(const std::vector<int64_t>& runs,
                      int64_t left,
                      int64_t top,
                      int64_t box_width,
                      int64_t box_height,
                      int64_t height,
                      int64_t width) {
  check_size(height, width, "image");
  if (box_width <= 0 || box_height <= 0 || left < 0 || top < 0 || box_width > width || box_height > height ||
      left > width - box_width || top > height - box_height)
    fail("mask", "box " + std::to_string(box_width) + "x" + std::to_string(box_height) + " at (" +
                     std::to_string(left) + ", " + std::to_string(top) + ") is not inside the " +
                     std::to_string(width) + "x" + std::to_string(height) + " image");
  int64_t total = 0;
  for (const int64_t r : runs) {
    if (r < 0 || r > box_width * box_height - total) fail("mask", "runs must be non-negative and fit the box");
    total += r;
  }
  if (total != box_width * box_height)
    fail("mask", "runs sum to " + std::to_string(total) + ", expected " + std::to_string(box_width * box_height));
  // Sweep the columns: between two rectangle edges the foreground rows are the same. Work is the
  // rectangles (at most 3 a run) times the segments they span, bounded like the counts.
  std::vector<std::tuple<int64_t, bool, int64_t, int64_t>> events;  // (x, starts, y0, y1); ends first
  for (const auto& r : run_rects(runs, left, top, box_width)) {
    events.emplace_back(r.x0, true, r.y0, r.y1);
    events.emplace_back(r.x1, false, r.y0, r.y1);
  }
  std::sort(events.begin(), events.end());
  Rle rle{height, width, {}};
  RunWriter out{rle};
  std::multiset<std::pair<int64_t, int64_t>> active;
  int64_t work = 0;
  for (size_t e = 0; e < events.size();) {
    const int64_t x = std::get<0>(events[e]);
    for (; e < events.size() && std::get<0>(events[e]) == x; ++e) {
      const auto& [ex, starts, y0, y1] = events[e];
      if (starts)
        active.insert({y0, y1});
      else
        active.erase(active.find({y0, y1}));
    }
    if (active.empty() || e == events.size()) continue;
    if ((work += static_cast<int64_t>(active.size())) > 8 * kMaxRowRunCounts)
      fail("rle", "the mask's runs take more than " + std::to_string(8 * kMaxRowRunCounts) + " steps to convert");
    const auto spans = row_union(active);
    const int64_t next = std::get<0>(events[e]);
    if (spans.size() == 1 && spans[0].first == 0 && spans[0].second == height) {  // full columns: one run
      out.add(x * height, (next - x) * height);
      continue;
    }
    for (int64_t col = x; col < next; ++col)
      for (const auto& [y0, y1] : spans) out.add(col * height + y0, y1 - y0);
  }
  if (height * width > out.end || rle.counts.empty())  // as encode(): no trailing empty run
    rle.counts.push_back(static_cast<uint32_t>(height * width - out.end));
  return rle;
}

Rle encode(const uint8_t* mask, int64_t height, int64_t width, MaskLayout layout) {
  check_size(height, width, "image");
  Rle rle{height, width, {}};
  uint32_t run = 0;
  bool value = false;
  for (int64_t x = 0; x < width; ++x) {
    for (int64_t y = 0; y < height; ++y) {
      const bool on = mask[layout == MaskLayout::column_major ? x * height + y : y * width + x] != 0;
      if (on != value) rle.counts.push_back(run), run = 0, value = on;
      ++run;
    }
  }
  rle.counts.push_back(run);
  return rle;
}

std::vector<uint8_t> decode(const Rle& rle, MaskLayout layout) {
  check_rle(rle, "rle");
  const int64_t h = rle.height, w = rle.width;
  std::vector<uint8_t> mask(static_cast<size_t>(h * w), 0);
  int64_t q = 0;  // column-major index of the run's first pixel
  for (size_t j = 0; j < rle.counts.size(); q += rle.counts[j++]) {
    if (j % 2 == 0) continue;
    const int64_t end = q + rle.counts[j];
    if (layout == MaskLayout::column_major) {
      std::fill(mask.begin() + q, mask.begin() + end, uint8_t{1});
      continue;
    }
    for (int64_t p = q, y = q % h, x = q / h; p < end; ++p) {
      mask[static_cast<size_t>(y * w + x)] = 1;
      if (++y == h) y = 0, ++x;
    }
  }
  return mask;
}

Rle merge(const std::vector<Rle>& rles, bool intersect) {
  if (rles.empty()) fail("merge", "no masks");
  for (size_t i = 0; i < rles.size(); ++i) {
    check_rle(rles[i], at("merge", i));
    if (rles[i].height != rles[0].height || rles[i].width != rles[0].width)
      fail(at("merge", i), "size " + size_text(rles[i].height, rles[i].width) + " differs from mask 0's " +
                               size_text(rles[0].height, rles[0].width));
  }
  Rle out = rles[0];
  for (size_t i = 1; i < rles.size(); ++i) merge_into(out, rles[i], intersect, at("merge", i));
  return out;
}

uint64_t area(const Rle& rle) { return ones(rle.counts); }

std::array<double, 4> to_bbox(const Rle& rle) {
  check_rle(rle, "rle");
  const auto h = static_cast<uint32_t>(rle.height), w = static_cast<uint32_t>(rle.width);
  const size_t m = rle.counts.size() / 2 * 2;  // a trailing run of zeros does not count
  if (m == 0) return {0, 0, 0, 0};
  uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (size_t j = 0; j < m; ++j) {
    cc += rle.counts[j];
    const uint32_t t = cc - static_cast<uint32_t>(j % 2), y = t % h, x = (t - y) / h;
    if (j % 2 == 0)
      xp = x;
    else if (xp < x)  // a run of ones across columns: full height
      ys = 0, ye = h - 1;
    xs = std::min(xs, x), xe = std::max(xe, x), ys = std::min(ys, y), ye = std::max(ye, y);
  }
  return {static_cast<double>(xs), static_cast<double>(ys), static_cast<double>(xe - xs + 1),
          static_cast<double>(ye - ys + 1)};
}

std::vector<double> iou(const std::vector<Rle>& dt, const std::vector<Rle>& gt, const std::vector<bool>& iscrowd) {
  if (iscrowd.size() != gt.size())
    fail("iou", "iscrowd has " + std::to_string(iscrowd.size()) + " entries for " + std::to_string(gt.size()) +
                    " ground-truth masks");
  std::vector<std::array<double, 4>> db, gb;
  for (size_t d = 0; d < dt.size(); ++d) check_rle(dt[d], at("dt", d)), db.push_back(to_bbox(dt[d]));
  for (size_t g = 0; g < gt.size(); ++g) check_rle(gt[g], at("gt", g)), gb.push_back(to_bbox(gt[g]));
  std::vector<double> out(dt.size() * gt.size(), 0.0);
  for (size_t d = 0; d < dt.size(); ++d) {
    for (size_t g = 0; g < gt.size(); ++g) {
      double& o = out[d * gt.size() + g];
      o = box_iou(db[d], gb[g], iscrowd[g]);
      if (o <= 0) continue;
      const bool same_size = dt[d].height == gt[g].height && dt[d].width == gt[g].width;
      o = same_size ? mask_iou(dt[d].counts, gt[g].counts, iscrowd[g]) : -1.0;
    }
  }
  return out;
}

}  // namespace detr::datasets
