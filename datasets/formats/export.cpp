#include "datasets/formats/export.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "datasets/coco_mask.h"
#include "datasets/formats/text.h"
#include "datasets/image_io.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

SplitChoice choose_splits(const RawExport& data, const fs::path& root) {
  auto find = [&](std::initializer_list<const char*> names) -> std::optional<size_t> {
    for (const char* n : names)
      for (size_t i = 0; i < data.subsets.size(); ++i)
        if (lower(data.subsets[i].name) == n) return i;
    return std::nullopt;
  };
  auto train = find({"train", "training"});
  const auto val = find({"validation", "val", "valid"});
  if (!train) train = find({"default"});
  if (!train && data.subsets.size() == 1) train = 0;
  if (!train) {
    std::string names;
    for (const auto& s : data.subsets) names += (names.empty() ? "" : ", ") + quote(s.name);
    throw std::runtime_error(root.string() + ": " + data.format + " export: no subset to train on" +
                             (names.empty() ? std::string(" (it holds no subsets)")
                                            : " among " + names + " (expected train, Train, default or one subset)"));
  }
  return {*train, val};
}

void sort_labels(RawExport& data) {
  std::vector<size_t> order(data.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return data.labels[a] < data.labels[b]; });
  std::vector<int64_t> new_index(order.size());
  std::vector<std::string> sorted;
  for (size_t k = 0; k < order.size(); ++k)
    new_index[order[k]] = static_cast<int64_t>(k), sorted.push_back(data.labels[order[k]]);
  for (auto& s : data.subsets)
    for (auto& im : s.images)
      for (auto& o : im.objects)
        if (o.label >= 0 && o.label < static_cast<int64_t>(new_index.size())) o.label = new_index[o.label];
  data.labels = std::move(sorted);
}

void check_labels(const std::vector<std::string>& labels, const fs::path& file, const std::vector<int64_t>& lines) {
  auto line = [&](size_t i) { return i < lines.size() ? lines[i] : 0; };
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i].empty()) fail_at(file, line(i), "label " + std::to_string(i) + ": empty label name");
    const auto [it, fresh] = seen.emplace(labels[i], i);
    if (!fresh)
      fail_at(file, line(i),
              "label " + std::to_string(i) + ": duplicate label name " + quote(labels[i]) + " (also label " +
                  std::to_string(it->second) + ")");
  }
  if (static_cast<int64_t>(labels.size()) >= kMaxNumClasses)
    fail_at(
        file, 0,
        std::to_string(labels.size()) + " labels: a class head holds at most " + std::to_string(kMaxNumClasses - 1));
}

namespace {
// dir/name normalised when it stays inside dir.
std::optional<fs::path> inside(const fs::path& dir, const std::string& name) {
  const fs::path given(name);
  const fs::path direct = (dir / given).lexically_normal();
  const fs::path rel = direct.lexically_relative(dir.lexically_normal());
  if (given.is_absolute() || rel.empty() || *rel.begin() == ".." || *rel.begin() == ".") return std::nullopt;
  return direct;
}
}  // namespace

fs::path join_inside(const fs::path& dir, const std::string& name) {
  if (auto direct = inside(dir, name)) return *direct;
  const fs::path base = fs::path(name).filename();
  return dir / (base.empty() || base == ".." || base == "." ? fs::path("_") : base);
}

std::optional<fs::path> find_inside(const fs::path& dir, const std::string& name) {
  if (name.empty() || name.find('\0') != std::string::npos) return std::nullopt;
  std::error_code ec;
  if (auto direct = inside(dir, name); direct && fs::is_regular_file(*direct, ec)) return direct;
  const fs::path base = fs::path(name).filename();
  if (!base.empty() && base != ".." && base != "." && fs::is_regular_file(dir / base, ec)) return dir / base;
  return std::nullopt;
}

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> kExtensions = {".jpg",  ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif",
                                                       ".tiff", ".jpe",  ".jp2", ".pgm", ".ppm", ".pbm",  ".pnm"};
  return kExtensions;
}

bool is_image_extension(const fs::path& path) {
  const auto& list = image_extensions();
  return std::find(list.begin(), list.end(), lower(path.extension().string())) != list.end();
}

std::optional<fs::path> find_image_by_stem(const fs::path& dir, const std::string& stem) {
  if (stem.empty() || stem.find('\0') != std::string::npos) return std::nullopt;
  for (const bool upper : {false, true})
    for (std::string ext : image_extensions()) {
      if (upper) std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::toupper(c); });
      if (auto found = find_inside(dir, stem + ext)) return found;
    }
  return std::nullopt;
}

const fs::path* ImageIndex::find(const std::string& stem) const {
  auto it = std::lower_bound(by_stem.begin(), by_stem.end(), stem,
                             [](const auto& entry, const std::string& s) { return entry.first < s; });
  return it != by_stem.end() && it->first == stem ? &it->second : nullptr;
}

ImageIndex index_images(const fs::path& dir) {
  ImageIndex index;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return index;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && is_image_extension(e.path())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) index.by_stem.emplace_back(f.stem().string(), f);
  std::stable_sort(index.by_stem.begin(), index.by_stem.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  index.by_stem.erase(std::unique(index.by_stem.begin(), index.by_stem.end(),
                                  [](const auto& a, const auto& b) { return a.first == b.first; }),
                      index.by_stem.end());
  return index;
}

Rle resize_nearest(const Rle& mask, int64_t height, int64_t width) {
  const std::vector<uint8_t> src = decode(mask, MaskLayout::column_major);
  // OpenCV's resizeNN: the inverse of the scale, as it computes it.
  const double fy = 1.0 / (static_cast<double>(height) / static_cast<double>(mask.height));
  const double fx = 1.0 / (static_cast<double>(width) / static_cast<double>(mask.width));
  std::vector<uint8_t> dst(static_cast<size_t>(height * width));
  for (int64_t x = 0; x < width; ++x) {
    const int64_t sx = std::min(static_cast<int64_t>(std::floor(static_cast<double>(x) * fx)), mask.width - 1);
    for (int64_t y = 0; y < height; ++y) {
      const int64_t sy = std::min(static_cast<int64_t>(std::floor(static_cast<double>(y) * fy)), mask.height - 1);
      dst[static_cast<size_t>(x * height + y)] = src[static_cast<size_t>(sx * mask.height + sy)];
    }
  }
  return encode(dst.data(), height, width, MaskLayout::column_major);
}

std::vector<std::vector<double>> pixel_polygons(const RawObject& o, int64_t width, int64_t height) {
  if (!o.normalized) return o.polygons;
  std::vector<std::vector<double>> out = o.polygons;
  for (auto& p : out)
    for (size_t i = 0; i < p.size(); ++i) p[i] *= static_cast<double>(i % 2 ? height : width);
  return out;
}

std::array<double, 4> polygon_bbox(const std::vector<double>& p) {
  double x0 = p.at(0), y0 = p.at(1), x1 = x0, y1 = y0;
  for (size_t i = 0; i + 1 < p.size(); i += 2) {
    x0 = std::min(x0, p[i]);
    x1 = std::max(x1, p[i]);
    y0 = std::min(y0, p[i + 1]);
    y1 = std::max(y1, p[i + 1]);
  }
  return {x0, y0, x1 - x0, y1 - y0};
}

namespace {

// "" when the image can train, else why not. Sets the record's size from the file's header when the
// format declares none, and compares it otherwise.
std::string check_image(CocoImageRecord& rec, const CocoLoadOptions& options) {
  try {
    int64_t width = 0, height = 0;
    const char* how = "header says";
    if (options.decode_images) {
      const auto img = load_image_rgb(rec.path, options.max_image_pixels);  // [H, W, 3]
      width = img.size(1), height = img.size(0), how = "decodes as";
    } else {
      const auto header = read_image_file_header(rec.path);
      if (auto why = too_many_pixels(rec.path, header, options.max_image_pixels); !why.empty()) return why;
      width = header.width, height = header.height;
    }
    if (rec.width == 0 && rec.height == 0) {
      rec.width = width, rec.height = height;
      return "";
    }
    if (width == rec.width && height == rec.height) return "";
    const bool swapped = width == rec.height && height == rec.width;
    return rec.path.string() + ": declared " + std::to_string(rec.width) + "x" + std::to_string(rec.height) +
           " but the file " + how + " " + std::to_string(width) + "x" + std::to_string(height) +
           (swapped ? " (rotated: EXIF orientation, which training ignores as upstream does; re-export the "
                      "images upright)"
                    : "; the boxes would not fit the pixels");
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string format_box(const std::array<double, 4>& b) {
  std::ostringstream o;
  o.precision(10);
  o << "[" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << "]";
  return o.str();
}

// pycocotools' area of the polygons on a height x width image (what a COCO export's `area` holds);
// the shoelace area where the image is too large for a mask.
double polygons_area(const std::vector<std::vector<double>>& polygons, int64_t height, int64_t width) {
  if (height * width <= kMaxMaskPixels && !polygons.empty() && polygons[0].size() > 4) {
    try {
      return static_cast<double>(area(rle_from_polygons(polygons, height, width)));
    } catch (const std::runtime_error&) {  // coordinates beyond the mask codec's limits
    }
  }
  double total = 0;
  for (const auto& p : polygons) {
    double a = 0;
    for (size_t i = 0; i + 1 < p.size(); i += 2) {
      const size_t j = (i + 2) % (p.size() - p.size() % 2);
      a += p[i] * p[j + 1] - p[j] * p[i + 1];
    }
    total += std::abs(a) / 2;
  }
  return total;
}

// The image's objects as CocoObjects (ids from next_id on); "" or why the image cannot train (a
// box of negative size). Unlabelled objects are counted, not kept.
std::string convert_objects_of(const RawExport& data,
                               const RawImage& raw,
                               const CocoImageRecord& rec,
                               int64_t& next_id,
                               int64_t& unlabelled,
                               std::vector<CocoObject>& out) {
  std::string why;
  for (const auto& r : raw.objects) {
    if (r.label < 0) {
      ++unlabelled;
      continue;
    }
    if (r.label >= static_cast<int64_t>(data.labels.size()))
      throw std::runtime_error(raw.source + ": " + r.where + ": label index " + std::to_string(r.label) +
                               " is not among the " + std::to_string(data.labels.size()) + " labels");
    CocoObject o;
    o.id = next_id++;
    o.category_id = r.label + 1;
    o.bbox = r.bbox;
    if (r.normalized) {
      const double w = static_cast<double>(rec.width), h = static_cast<double>(rec.height);
      o.bbox = {r.bbox[0] * w, r.bbox[1] * h, r.bbox[2] * w, r.bbox[3] * h};
    }
    o.iscrowd = r.iscrowd;
    o.area = r.area               ? *r.area
             : r.polygons.empty() ? o.bbox[2] * o.bbox[3]
                                  : polygons_area(pixel_polygons(r, rec.width, rec.height), rec.height, rec.width);
    if (!r.polygons.empty()) {
      o.segmentation.polygons = pixel_polygons(r, rec.width, rec.height);
      try {
        check_polygons(o.segmentation.polygons);
      } catch (const std::runtime_error& e) {
        if (why.empty()) why = r.where + ": " + e.what();
      }
    }
    if (r.mask) {
      const bool fits = r.mask->height == rec.height && r.mask->width == rec.width;
      if (fits || r.mask_any_size)
        o.segmentation.rle = fits ? *r.mask : resize_nearest(*r.mask, rec.height, rec.width);
      else if (why.empty())
        why = r.where + ": mask is " + std::to_string(r.mask->width) + "x" + std::to_string(r.mask->height) +
              ", the image " + std::to_string(rec.width) + "x" + std::to_string(rec.height);
      if (o.segmentation.rle && !r.area) o.area = static_cast<double>(area(*o.segmentation.rle));
    }
    if ((o.bbox[2] < 0 || o.bbox[3] < 0) && why.empty())
      why = r.where + ": box has a negative width or height: " + format_box(o.bbox);
    out.push_back(std::move(o));
  }
  return why;
}

// Counts images, boxes and upstream's drops (as load_coco's summary).
void summarize(CocoDataset& data, int64_t unlabelled) {
  auto& s = data.summary;
  s.images = static_cast<int64_t>(data.images.size());
  for (const auto& rec : data.images) {
    int64_t crowd = 0;
    for (const auto& o : rec.objects) crowd += o.iscrowd;
    const auto n = static_cast<int64_t>(convert_objects(rec.objects, rec.width, rec.height).labels.size());
    s.crowd_dropped += crowd;
    s.degenerate_dropped += static_cast<int64_t>(rec.objects.size()) - crowd - n;
    s.boxes += n;
    s.images_without_boxes += n == 0;
  }
  if (s.boxes == 0) s.warnings.push_back("no boxes at all: the model can only learn to predict 'no object'");
  if (s.crowd_dropped)
    s.warnings.push_back(
        std::to_string(s.crowd_dropped) +
        " ignore regions (COCO's iscrowd 1, VOC difficult, MOT ignored, CVAT ellipses, is_crowd shapes) are not "
        "trained on, as upstream; evaluation ignores detections on them");
  if (unlabelled) s.warnings.push_back(std::to_string(unlabelled) + " objects without a label are not trained on");
}

// Drops (and counts) the bad images, or throws naming the first.
// `bad` maps image id to "<file>: image id N: why".
void handle_bad(CocoDataset& data, const std::map<int64_t, std::string>& bad, const CocoLoadOptions& options) {
  if (bad.empty()) return;
  if (!options.skip_bad_images) {
    const std::string more = bad.size() > 1 ? " (and " + std::to_string(bad.size() - 1) + " more images)" : "";
    throw std::runtime_error(bad.begin()->second + more + "; pass --skip_bad_images to train without them");
  }
  std::vector<CocoImageRecord> kept;
  for (auto& rec : data.images) {
    const auto it = bad.find(rec.id);
    if (it == bad.end())
      kept.push_back(std::move(rec));
    else
      data.summary.skipped.push_back(it->second);
  }
  data.summary.skipped_images = static_cast<int64_t>(bad.size());
  data.images = std::move(kept);
}

}  // namespace

CocoDataset to_coco_dataset(const RawExport& data, const RawSubset& subset, const CocoLoadOptions& options) {
  CocoDataset out;
  out.annotation_file = subset.source;
  out.max_image_pixels = options.max_image_pixels;
  // Exports CVAT writes: their masks are crowd RLEs as in its COCO export, which --crowd auto trains.
  out.cvat_attributes = data.format == "cvat" || data.format == "datumaro" || data.format == "labelme";
  for (size_t i = 0; i < data.labels.size(); ++i)
    out.categories.push_back({static_cast<int64_t>(i) + 1, data.labels[i]});
  std::map<int64_t, std::string> bad;
  std::unordered_set<int64_t> ids;
  int64_t next_object = 1, unlabelled = 0;
  for (const auto& raw : subset.images) {
    if (!ids.insert(raw.id).second)
      throw std::runtime_error(raw.source + ": image id " + std::to_string(raw.id) + " (" + quote(raw.file_name) +
                               ") appears twice in subset " + quote(subset.name));
    CocoImageRecord rec;
    rec.id = raw.id, rec.file_name = raw.file_name, rec.path = raw.path;
    rec.width = raw.width, rec.height = raw.height;
    std::error_code ec;
    std::string why = fs::is_regular_file(rec.path, ec)
                          ? check_image(rec, options)
                          : "image file " + quote(raw.file_name) + " not found (looked for " + rec.path.string() + ")";
    if (why.empty() && (rec.width <= 0 || rec.height <= 0)) why = "width/height must be positive";
    if (why.empty()) why = convert_objects_of(data, raw, rec, next_object, unlabelled, rec.objects);
    if (!why.empty()) bad.emplace(rec.id, raw.source + ": image id " + std::to_string(rec.id) + ": " + why);
    out.images.push_back(std::move(rec));
  }
  std::sort(out.images.begin(), out.images.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  handle_bad(out, bad, options);
  if (out.images.empty())
    throw std::runtime_error(subset.source.string() + ": subset " + quote(subset.name) + ": no usable images");
  summarize(out, unlabelled);
  for (const auto& w : data.warnings) out.summary.warnings.push_back(w);
  return out;
}

}  // namespace detr::datasets::formats
