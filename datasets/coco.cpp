#include "datasets/coco.h"
#include "datasets/json_reader.h"
#include "util/atomic_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "datasets/image_io.h"

namespace detr::datasets {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The folder a split's file_names are relative to: the first that exists of images/<subset>,
// images/, <subset>/ and the annotation file's folder.
fs::path guess_image_dir(const fs::path& root, const std::string& subset, const fs::path& ann) {
  for (const auto& dir : {root / "images" / subset, root / "images", root / subset, ann.parent_path()})
    if (fs::is_directory(dir)) return dir;
  return root / "images";
}

std::optional<CocoSplit> explicit_split(const fs::path& root, const std::string& ann, const std::string& image_dir) {
  if (ann.empty()) return std::nullopt;
  fs::path a = ann;
  if (a.is_relative() && !fs::exists(a)) a = root / a;
  if (!fs::is_regular_file(a)) throw std::runtime_error(a.string() + ": annotation file not found");
  std::string subset = a.stem().string();
  if (subset.rfind("instances_", 0) == 0) subset = subset.substr(10);
  fs::path dir = image_dir.empty() ? guess_image_dir(root, subset, a) : fs::path(image_dir);
  return CocoSplit{a, dir, subset};
}

}  // namespace

CocoLayout discover_coco(const fs::path& root, const CocoPathOverrides& o) {
  if (!fs::is_directory(root)) throw std::runtime_error(root.string() + ": --coco_path is not a directory");
  if (!o.train_annotations.empty()) {
    CocoLayout layout{"explicit", *explicit_split(root, o.train_annotations, o.image_dir), std::nullopt};
    layout.val = explicit_split(root, o.val_annotations, o.image_dir);
    return layout;
  }
  const fs::path ann = root / "annotations";
  auto with_dir = [&](CocoSplit s) {
    if (!o.image_dir.empty()) s.image_dir = o.image_dir;
    return s;
  };
  // Upstream's COCO 2017 layout.
  if (fs::is_regular_file(ann / "instances_train2017.json")) {
    CocoLayout layout{"upstream", with_dir({ann / "instances_train2017.json", root / "train2017", "train2017"}),
                      std::nullopt};
    if (fs::is_regular_file(ann / "instances_val2017.json"))
      layout.val = with_dir({ann / "instances_val2017.json", root / "val2017", "val2017"});
    return layout;
  }
  // CVAT / Datumaro: annotations/instances_<Subset>.json.
  std::map<std::string, fs::path> subsets;  // lower-case subset -> file
  std::map<std::string, std::string> original;
  if (fs::is_directory(ann)) {
    for (const auto& e : fs::directory_iterator(ann)) {
      const auto name = e.path().filename().string();
      if (e.is_regular_file() && name.rfind("instances_", 0) == 0 && e.path().extension() == ".json") {
        const auto subset = e.path().stem().string().substr(10);
        subsets[lower(subset)] = e.path();
        original[lower(subset)] = subset;
      }
    }
  }
  // Roboflow: <subset>/_annotations.coco.json beside the subset's images.
  const bool roboflow = subsets.empty();
  if (roboflow)
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory() && fs::is_regular_file(e.path() / kRoboflowCocoFile)) {
        const auto subset = e.path().filename().string();
        subsets[lower(subset)] = e.path() / kRoboflowCocoFile;
        original[lower(subset)] = subset;
      }
  auto pick = [&](std::initializer_list<const char*> names) -> std::optional<CocoSplit> {
    for (const char* n : names) {
      auto it = subsets.find(n);
      if (it != subsets.end())
        return with_dir({it->second, guess_image_dir(root, original[n], it->second), original[n]});
    }
    return std::nullopt;
  };
  auto train = pick({"train", "training"});
  auto val = pick({"validation", "val", "valid"});
  if (!train) train = pick({"default"});
  if (!train && subsets.size() == 1)
    train = with_dir({subsets.begin()->second,
                      guess_image_dir(root, original[subsets.begin()->first], subsets.begin()->second),
                      original[subsets.begin()->first]});
  if (train) return {roboflow ? "roboflow" : subsets.size() > 1 ? "cvat-subsets" : "cvat", *train, val};

  std::ostringstream msg;
  msg << root.string() << ": no COCO annotations found. Looked for " << (ann / "instances_default.json").string()
      << " (CVAT), " << (ann / "instances_<Subset>.json").string()
      << " (CVAT/Datumaro subsets such as instances_Train.json), " << (ann / "instances_train2017.json").string()
      << " (upstream), " << (root / "<subset>" / kRoboflowCocoFile).string()
      << " (Roboflow); or give --train_annotations FILE [--val_annotations FILE] [--image_dir DIR]";
  if (fs::is_directory(ann)) {
    msg << ". " << ann.string() << " holds:";
    int n = 0;
    for (const auto& e : fs::directory_iterator(ann))
      if (n++ < 8) msg << " " << e.path().filename().string();
  }
  throw std::runtime_error(msg.str());
}

namespace {

using Reader = JsonReader;

std::string read_annotation_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open annotation file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path.string() + ": cannot read annotation file");
  return text.str();
}

// `categories`: ids unique; with `training`, a name each and ids a class head can hold.
std::unordered_set<int64_t> read_categories(const Reader& r, const json& categories, bool training, CocoDataset& data) {
  std::unordered_set<int64_t> ids;
  data.categories.reserve(categories.size());
  for (size_t i = 0; i < categories.size(); ++i) {
    const auto where = "categories[" + std::to_string(i) + "]";
    const json& c = r.object(categories[i], where);
    CocoCategory cat;
    cat.id = r.integer(r.field(c, "id", where), "id", where);
    if (const json* name = training ? &r.field(c, "name", where) : Reader::optional(c, "name"))
      cat.name = r.string(*name, "name", where);
    if (!ids.insert(cat.id).second) r.fail(where, "duplicate category id " + std::to_string(cat.id));
    if (training && cat.id < 0) r.fail(where, "negative category id " + std::to_string(cat.id));
    if (training && cat.id >= kMaxNumClasses)
      r.fail(where, "category id " + std::to_string(cat.id) + " would need a class head of " +
                        std::to_string(cat.id + 1) + " outputs (upstream's max id + 1; at most " +
                        std::to_string(kMaxNumClasses) + "): renumber the categories");
    data.categories.push_back(std::move(cat));
  }
  if (training && data.categories.empty()) r.fail("categories", "no categories: nothing to train");
  return ids;
}

// `images`: ids unique; with `training`, a file_name and a positive size each. Returns image id ->
// position in data.images.
std::unordered_map<int64_t, size_t> read_images(const Reader& r, const json& images, bool training, CocoDataset& data) {
  std::unordered_map<int64_t, size_t> index_of;
  data.images.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    std::string where = "images[" + std::to_string(i) + "]";
    const json& im = r.object(images[i], where);
    CocoImageRecord rec;
    rec.id = r.integer(r.field(im, "id", where), "id", where);
    if (!index_of.emplace(rec.id, data.images.size()).second)
      r.fail(where, "duplicate image id " + std::to_string(rec.id));
    where = "image id " + std::to_string(rec.id);
    if (const json* v = training ? &r.field(im, "file_name", where) : Reader::optional(im, "file_name")) {
      rec.file_name = r.string(*v, "file_name", where);
      if (rec.file_name.find('\0') != std::string::npos)
        r.fail(where, "'file_name' contains a NUL character: " + json_preview(*v));
    }
    if (const json* v = training ? &r.field(im, "width", where) : Reader::optional(im, "width"))
      rec.width = r.integer(*v, "width", where);
    if (const json* v = training ? &r.field(im, "height", where) : Reader::optional(im, "height"))
      rec.height = r.integer(*v, "height", where);
    if (training && (rec.width <= 0 || rec.height <= 0))
      r.fail(where,
             "width/height must be positive, got " + std::to_string(rec.width) + "x" + std::to_string(rec.height));
    data.images.push_back(std::move(rec));
  }
  return index_of;
}

// One annotation's fields past its ids (`where` names it by id) for an object of `image`. Evaluation
// needs `area`; training takes w*h without one.
void read_object_fields(const Reader& r,
                        const json& a,
                        const std::string& where,
                        bool training,
                        const CocoImageRecord& image,
                        CocoObject& o) {
  o.bbox = r.bbox(r.field(a, "bbox", where), where);
  o.iscrowd = r.iscrowd(a, where);
  o.area = o.bbox[2] * o.bbox[3];
  if (const json* v = training ? Reader::optional(a, "area") : &r.field(a, "area", where))
    o.area = r.number(*v, "area", where);
  if (const json* v = Reader::optional(a, "segmentation")) {
    try {
      o.segmentation = read_segmentation(*v, image.height, image.width);
    } catch (const std::runtime_error& e) {  // "segmentation...: what" from the mask codec
      r.fail(where, e.what());
    }
  }
}

// `annotations`: ids unique, each on a listed image and category; objects go to their image in
// file order.
void read_annotations(const Reader& r,
                      const json& annotations,
                      bool training,
                      const std::unordered_map<int64_t, size_t>& index_of,
                      const std::unordered_set<int64_t>& category_ids,
                      CocoDataset& data) {
  std::unordered_set<int64_t> annotation_ids;
  annotation_ids.reserve(annotations.size());
  for (size_t i = 0; i < annotations.size(); ++i) {
    std::string where = "annotations[" + std::to_string(i) + "]";
    const json& a = r.object(annotations[i], where);
    CocoObject o;
    o.id = r.integer(r.field(a, "id", where), "id", where);
    if (!annotation_ids.insert(o.id).second) r.fail(where, "duplicate annotation id " + std::to_string(o.id));
    where = "annotation id " + std::to_string(o.id);
    const int64_t image_id = r.integer(r.field(a, "image_id", where), "image_id", where);
    const auto image = index_of.find(image_id);
    if (image == index_of.end()) r.fail(where, "image_id " + std::to_string(image_id) + " is not in images");
    o.category_id = r.integer(r.field(a, "category_id", where), "category_id", where);
    if (!category_ids.count(o.category_id))
      r.fail(where, "category_id " + std::to_string(o.category_id) + " is not in categories");
    auto& rec = data.images[image->second];
    read_object_fields(r, a, where, training, rec, o);
    if (a.contains("attributes")) data.cvat_attributes = true;  // CVAT writes occluded etc. there
    rec.objects.push_back(std::move(o));
  }
}

// The one parser of annotation files (coco.h states the rules). `training` adds what a training split
// needs; evaluation needs every annotation's `area` instead.
CocoDataset parse_annotations(const json& root, const std::string& file, bool training) {
  Reader r(file);
  if (!root.is_object()) r.fail("expected a JSON object with images, annotations and categories");
  const json& categories = r.list(root, "categories");
  const json& images = r.list(root, "images");
  const json& annotations = r.list(root, "annotations");
  CocoDataset data;
  data.annotation_file = file;
  const auto category_ids = read_categories(r, categories, training, data);
  const auto index_of = read_images(r, images, training, data);
  read_annotations(r, annotations, training, index_of, category_ids, data);

  // upstream: sorted(coco.imgs.keys()); pycocotools sorts the ids it evaluates.
  std::sort(data.images.begin(), data.images.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::sort(data.categories.begin(), data.categories.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return data;
}

// file_name as given (relative to the image folder, or absolute), else images/<basename>: CVAT
// exports may carry the annotator's absolute paths.
std::optional<fs::path> resolve_image(const fs::path& image_dir, const std::string& file_name, bool& fell_back) {
  fell_back = false;
  fs::path given(file_name);
  // Only names inside the image folder are opened as given: an absolute name (from the annotator's
  // machine) or one climbing out with '..' is looked up by its base name in the folder instead.
  const fs::path dir = image_dir.lexically_normal(), direct = (image_dir / given).lexically_normal();
  const fs::path rel = direct.lexically_relative(dir);
  const bool inside = !given.is_absolute() && !rel.empty() && *rel.begin() != "..";
  if (inside && fs::is_regular_file(direct)) return direct;
  fs::path base = image_dir / given.filename();
  if (fs::is_regular_file(base)) {
    fell_back = true;
    return base;
  }
  return std::nullopt;
}

}  // namespace

// Counts images, boxes and upstream's drops; warns about exports that train badly.
static void summarize(CocoDataset& data, const fs::path& image_dir) {
  auto& summary = data.summary;
  summary.images = static_cast<int64_t>(data.images.size());
  summary.boxes = summary.crowd_dropped = summary.degenerate_dropped = summary.images_without_boxes = 0;
  summary.warnings.clear();
  for (const auto& rec : data.images) {
    int64_t crowd = 0;
    for (const auto& o : rec.objects) crowd += o.iscrowd;
    const auto clean = convert_objects(rec.objects, rec.width, rec.height);
    const auto n = static_cast<int64_t>(clean.labels.size());
    summary.crowd_dropped += crowd;
    summary.degenerate_dropped += static_cast<int64_t>(rec.objects.size()) - crowd - n;
    summary.boxes += n;
    summary.images_without_boxes += n == 0;
  }
  if (summary.boxes == 0)
    summary.warnings.push_back("no boxes at all: the model can only learn to predict 'no object'");
  if (summary.crowd_dropped)
    summary.warnings.push_back(std::to_string(summary.crowd_dropped) +
                               " crowd regions (iscrowd 1: CVAT exports mask and brush annotations so) are not "
                               "trained on, as upstream; annotate boxes or polygons to train on them");
  if (const int64_t n = data.categories.size(), max_id = data.max_category_id(); max_id + 1 > 4 * n + 100)
    summary.warnings.push_back("category ids go up to " + std::to_string(max_id) + " for " + std::to_string(n) +
                               " categories: the class head gets " + std::to_string(max_id + 1) +
                               " outputs (upstream's max id + 1), most never trained; renumbering the "
                               "categories 1.." +
                               std::to_string(n) + " gives a smaller, faster model");
  if (summary.file_name_fallbacks)
    summary.warnings.push_back(std::to_string(summary.file_name_fallbacks) +
                               " file_name(s) not found as given, found by basename in " + image_dir.string());
}

int64_t CocoDataset::max_category_id() const {
  int64_t m = 0;
  for (const auto& c : categories) m = std::max(m, c.id);
  return m;
}

CleanObjects convert_objects(const std::vector<CocoObject>& objects, int64_t w, int64_t h) {
  CleanObjects out;
  for (const auto& o : objects) {
    if (o.iscrowd) continue;
    // float32 as upstream's tensors: xywh -> xyxy, then clamp to [0, w] x [0, h].
    float x0 = static_cast<float>(o.bbox[0]), y0 = static_cast<float>(o.bbox[1]);
    float x1 = x0 + static_cast<float>(o.bbox[2]), y1 = y0 + static_cast<float>(o.bbox[3]);
    auto clamp = [](float v, float hi) { return std::min(std::max(v, 0.0f), hi); };
    x0 = clamp(x0, static_cast<float>(w));
    x1 = clamp(x1, static_cast<float>(w));
    y0 = clamp(y0, static_cast<float>(h));
    y1 = clamp(y1, static_cast<float>(h));
    if (!(y1 > y0 && x1 > x0)) continue;
    out.boxes_xyxy.push_back({x0, y0, x1, y1});
    out.labels.push_back(o.category_id);
    out.areas.push_back(static_cast<float>(o.area));
    out.kept.push_back(static_cast<size_t>(&o - objects.data()));
  }
  return out;
}

CocoDataset parse_coco_annotations(std::string_view json_text, const std::string& source) {
  return parse_annotations(parse_json(json_text, source), source, /*training=*/false);
}

CocoDataset load_coco_annotations(const fs::path& json_path) {
  return parse_coco_annotations(read_annotation_file(json_path), json_path.string());
}

namespace {
// "" when the file's size is the annotation's, else why not (a swap names EXIF orientation).
std::string size_mismatch(const CocoImageRecord& rec, int64_t width, int64_t height, const char* how) {
  if (width == rec.width && height == rec.height) return "";
  const bool swapped = width == rec.height && height == rec.width;
  return rec.path.string() + ": declared " + std::to_string(rec.width) + "x" + std::to_string(rec.height) +
         " but the file " + how + " " + std::to_string(width) + "x" + std::to_string(height) +
         (swapped ? " (rotated: the annotator's tool applied EXIF orientation, which training ignores as upstream "
                    "does; re-export the images upright)"
                  : "; the boxes would not fit the pixels");
}

// Finds rec's image in image_dir and sets rec.path; returns "" when the image can train, else why not.
// Every image's header is read (cheap): its declared size must be the annotation's, and within the
// pixel limit. --check_data and --skip_bad_images decode every image too.
std::string resolve_and_check(CocoImageRecord& rec,
                              const fs::path& image_dir,
                              const CocoLoadOptions& options,
                              bool& fell_back) {
  const auto path = resolve_image(image_dir, rec.file_name, fell_back);
  if (!path) {
    rec.path = image_dir / rec.file_name;
    return "image file '" + rec.file_name + "' not found in " + image_dir.string();
  }
  rec.path = *path;
  try {
    if (options.decode_images) {
      const auto img = load_image_rgb(rec.path, options.max_image_pixels);  // [H, W, 3]
      return size_mismatch(rec, img.size(1), img.size(0), "decodes as");
    }
    const auto header = read_image_file_header(rec.path);
    const auto why = too_many_pixels(rec.path, header, options.max_image_pixels);
    return why.empty() ? size_mismatch(rec, header.width, header.height, "header says") : why;
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string format_bbox(const std::array<double, 4>& b) {
  std::ostringstream o;
  o.precision(10);
  o << "[" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3] << "]";
  return o.str();
}
}  // namespace

CocoDataset load_coco(const CocoSplit& split, const CocoLoadOptions& options) {
  const std::string file = split.annotation_file.string();
  CocoDataset data =
      parse_annotations(parse_json(read_annotation_file(split.annotation_file), file), file, /*training=*/true);
  data.annotation_file = split.annotation_file;
  data.max_image_pixels = options.max_image_pixels;
  auto& summary = data.summary;

  // Bad images (skipped with --skip_bad_images): image id -> why, the first reason found.
  std::map<int64_t, std::string> bad, negative;
  for (const auto& rec : data.images)
    for (const auto& o : rec.objects)
      if (o.bbox[2] < 0 || o.bbox[3] < 0) {
        const auto why =
            "annotation id " + std::to_string(o.id) + ": bbox has a negative width or height: " + format_bbox(o.bbox);
        if (!options.skip_bad_images) throw std::runtime_error(file + ": " + why);
        negative.emplace(rec.id, why);
      }
  for (auto& rec : data.images) {
    bool fell_back = false;
    auto why = resolve_and_check(rec, split.image_dir, options, fell_back);
    summary.file_name_fallbacks += fell_back;
    if (!why.empty()) bad.emplace(rec.id, std::move(why));
  }
  bad.insert(negative.begin(), negative.end());  // an image's own problem is named first

  // Bad images: an error, or skipped and counted.
  if (!bad.empty()) {
    if (!options.skip_bad_images) {
      const auto& [id, why] = *bad.begin();
      std::string more = bad.size() > 1 ? " (and " + std::to_string(bad.size() - 1) + " more images)" : "";
      throw std::runtime_error(file + ": image id " + std::to_string(id) + ": " + why + more +
                               "; pass --skip_bad_images to train without them");
    }
    std::vector<CocoImageRecord> kept;
    for (auto& rec : data.images) {
      auto it = bad.find(rec.id);
      if (it == bad.end()) {
        kept.push_back(std::move(rec));
      } else {
        summary.skipped.push_back("image id " + std::to_string(rec.id) + ": " + it->second);
      }
    }
    summary.skipped_images = static_cast<int64_t>(bad.size());
    data.images = std::move(kept);
  }
  if (data.images.empty()) throw std::runtime_error(file + ": images: no usable images");

  summarize(data, split.image_dir);
  return data;
}

std::pair<CocoDataset, CocoDataset> split_dataset(const CocoDataset& data, double fraction, uint64_t seed) {
  if (!(fraction > 0 && fraction < 1))
    throw std::invalid_argument("--val_split must be in (0, 1), got " + std::to_string(fraction));
  const auto n = data.images.size();
  if (n < 2)
    throw std::runtime_error(data.annotation_file.string() + ": " + std::to_string(n) +
                             " image(s) cannot be split into train and validation; use --val_split 0");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (size_t i = n - 1; i > 0; --i) std::swap(order[i], order[std::uniform_int_distribution<size_t>(0, i)(rng)]);
  size_t n_val = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  n_val = std::min(std::max<size_t>(n_val, 1), n - 1);
  std::vector<bool> is_val(n, false);
  for (size_t i = 0; i < n_val; ++i) is_val[order[i]] = true;
  CocoDataset train = data, val = data;
  train.images.clear();
  val.images.clear();
  for (size_t i = 0; i < n; ++i) (is_val[i] ? val : train).images.push_back(data.images[i]);
  summarize(train, "");
  summarize(val, "");
  return {train, val};
}

void write_classes_csv(const std::vector<CocoCategory>& categories, const fs::path& path) {
  std::ostringstream out;
  out << "labels,id\n";
  for (const auto& c : categories) {
    std::string name = c.name;
    if (name.find_first_of(",\"\n") != std::string::npos) {  // CSV-quote odd names
      std::string q = "\"";
      for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      name = q + "\"";
    }
    out << name << "," << c.id << "\n";
  }
  util::write_file_atomically(path, out.str());
}

std::string format_summary(const CocoDataset& d, const std::string& name) {
  const auto& s = d.summary;
  std::ostringstream o;
  o << name << ": " << d.annotation_file.string() << ": " << s.images << " images (" << s.images_without_boxes
    << " without boxes), " << s.boxes << " boxes, " << d.categories.size() << " classes (max id " << d.max_category_id()
    << "); dropped " << s.crowd_dropped << " crowd + " << s.degenerate_dropped << " degenerate boxes; skipped "
    << s.skipped_images << " images";
  for (const auto& w : s.warnings) o << "\n  warning: " << w;
  for (const auto& k : s.skipped) o << "\n  skipped " << k;
  return o.str();
}

}  // namespace detr::datasets
