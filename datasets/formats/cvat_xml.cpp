#include "datasets/formats/cvat_xml.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

#include "datasets/coco_mask.h"
#include "datasets/formats/text.h"
#include "datasets/formats/xml.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

fs::path find_cvat_xml(const fs::path& root) {
  std::error_code ec;
  if (fs::is_regular_file(root / "annotations.xml", ec)) return root / "annotations.xml";
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".xml" && peek_xml_root(e.path()) == "annotations")
      found.push_back(e.path());
  if (found.size() != 1)
    throw std::runtime_error(root.string() + ": " +
                             (found.empty() ? std::string("no CVAT XML (annotations.xml)")
                                            : std::to_string(found.size()) + " CVAT XML files; expected one"));
  return found.front();
}

std::vector<int64_t> cvat_mask_runs(std::string_view rle, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width > (1 << 20) || height > (1 << 20))
    throw std::runtime_error("mask size " + std::to_string(width) + "x" + std::to_string(height) + " is out of range");
  const int64_t total = width * height;
  int64_t pos = 0;
  std::vector<int64_t> runs;
  const auto counts = split(rle, ',');
  for (size_t i = 0; i < counts.size(); ++i) {
    const auto n = parse_int(counts[i]);
    if (!n || *n < 0 || *n > total - pos)
      throw std::runtime_error("rle count " + std::to_string(i) + " is " + quote(counts[i]) +
                               ": runs must be non-negative "
                               "integers summing to width*height = " +
                               std::to_string(total));
    runs.push_back(*n);
    pos += *n;
  }
  if (pos != total)
    throw std::runtime_error("rle runs sum to " + std::to_string(pos) +
                             ", expected width*height = " + std::to_string(total));
  return runs;
}

namespace {

struct Context {
  fs::path file;
  std::map<std::string, int64_t> label_of;
  int64_t outside = 0;
  uint64_t mask_counts = 0, max_mask_counts = 0;  // RLE counts of all masks, and their bound
};

// "x0,y0;x1,y1;..." as [x0, y0, x1, y1, ...].
std::vector<double> parse_points(const XmlElement& el, const Context& c, const std::string& where) {
  const std::string& text = require_attribute(el, "points", c.file, where);
  std::vector<double> points;
  for (const auto pair : split(text, ';')) {
    const auto xy = split(pair, ',');
    const auto x = xy.size() == 2 ? parse_double(xy[0]) : std::nullopt;
    const auto y = xy.size() == 2 ? parse_double(xy[1]) : std::nullopt;
    if (!x || !y)
      fail_at(c.file, el.line, where + ": " + el.name + ".points must be 'x,y;x,y;...', got " + quote(text));
    points.push_back(*x);
    points.push_back(*y);
  }
  return points;
}

int64_t integer_attribute(const XmlElement& el, const char* key, const Context& c, const std::string& where) {
  const std::string& text = require_attribute(el, key, c.file, where);
  const auto v = parse_int(text, /*allow_integral_decimal=*/true);
  if (!v) fail_at(c.file, el.line, where + ": " + el.name + "." + key + " must be an integer, got " + quote(text));
  return *v;
}

// Whether the shape has <attribute name="is_crowd">true</attribute> (or 1): an ignore region.
bool is_crowd(const XmlElement& el) {
  for (const XmlElement* a : el.children_named("attribute")) {
    const std::string* name = a->attribute("name");
    if (name && *name == "is_crowd") return trim(a->text) == "true" || trim(a->text) == "1";
  }
  return false;
}

// A <mask>: its runs over the box as an image-sized RLE (image_size is width, height), its box and
// pixel count from that.
void read_mask(const XmlElement& el,
               RawObject& o,
               const std::array<int64_t, 2>& image_size,
               Context& c,
               const std::string& where) {
  const std::string& rle = require_attribute(el, "rle", c.file, where);
  const int64_t left = integer_attribute(el, "left", c, where), top = integer_attribute(el, "top", c, where);
  const int64_t width = integer_attribute(el, "width", c, where), height = integer_attribute(el, "height", c, where);
  if (image_size[0] <= 0 || image_size[1] <= 0)
    fail_at(c.file, el.line, where + ": a mask needs the image's width and height, which the dump does not give");
  try {
    o.mask =
        rle_from_row_runs(cvat_mask_runs(rle, width, height), left, top, width, height, image_size[1], image_size[0]);
    o.bbox = to_bbox(*o.mask);
    o.area = static_cast<double>(area(*o.mask));
    o.iscrowd = true;  // as CVAT's COCO export writes masks; --crowd decides (cvat_policy.h)
  } catch (const std::runtime_error& e) {
    fail_at(c.file, el.line, where + ": mask.rle: " + e.what());
  }
  if ((c.mask_counts += o.mask->counts.size()) > c.max_mask_counts)
    fail_at(c.file, el.line,
            where + ": the masks so far take " + std::to_string(c.mask_counts) + " run counts, more than " +
                std::to_string(c.max_mask_counts) + " (16 per byte of the file + 2^24)");
}

// A box, polygon, mask or ellipse as an object; nullopt for other shapes and outside ones. A mask
// needs the image's size (width, height).
std::optional<RawObject> read_shape(const XmlElement& el,
                                    const std::string& label,
                                    const std::array<int64_t, 2>& image_size,
                                    Context& c,
                                    const std::string& where) {
  static const char* kShapes[] = {"box", "polygon", "mask", "ellipse"};
  if (std::none_of(std::begin(kShapes), std::end(kShapes), [&](const char* s) { return el.name == s; }))
    return std::nullopt;
  if (const std::string* out = el.attribute("outside"); out && *out == "1") {
    ++c.outside;
    return std::nullopt;
  }
  RawObject o;
  o.where = where + " <" + el.name + "> (line " + std::to_string(el.line) + ")";
  const auto it = c.label_of.find(label);
  if (!label.empty() && it == c.label_of.end())
    fail_at(c.file, el.line, where + ": " + el.name + ".label " + quote(label) + " is not a label of the meta");
  o.label = label.empty() ? -1 : it->second;
  auto num = [&](const char* key) { return attribute_number(el, key, c.file, where); };
  if (el.name == "box") {
    o.bbox = {num("xtl"), num("ytl"), num("xbr") - num("xtl"), num("ybr") - num("ytl")};
  } else if (el.name == "polygon") {
    auto points = parse_points(el, c, where);
    if (points.size() < 6) fail_at(c.file, el.line, where + ": polygon has fewer than 3 points");
    o.bbox = polygon_bbox(points);
    o.polygons.push_back(std::move(points));
  } else if (el.name == "ellipse") {
    const double rx = num("rx"), ry = num("ry");
    o.bbox = {num("cx") - rx, num("cy") - ry, 2 * rx, 2 * ry};
    o.iscrowd = true;
  } else {
    read_mask(el, o, image_size, c, where);
  }
  if (is_crowd(el)) o.iscrowd = true;
  return o;
}

std::vector<std::string> read_labels(const XmlElement& doc, const fs::path& file) {
  const XmlElement* meta = doc.child("meta");
  const XmlElement* owner = nullptr;
  for (const char* name : {"task", "project", "job"})
    if (!owner && meta) owner = meta->child(name);
  const XmlElement* labels = owner ? owner->child("labels") : nullptr;
  if (!labels) fail_at(file, meta ? meta->line : doc.line, "no <meta><task|project|job><labels>");
  std::vector<std::string> names;
  std::vector<int64_t> lines;
  for (const XmlElement* label : labels->children_named("label")) {
    names.push_back(require_child(*label, "name", file, "label").text);
    lines.push_back(label->line);
  }
  check_labels(names, file, lines);
  if (names.empty()) fail_at(file, labels->line, "no labels");
  return names;
}

// Where an image of the subset is: images/<subset>/, images/, or beside the XML.
fs::path locate(const fs::path& root, const std::string& subset, const std::string& name) {
  for (const auto& dir : {root / "images" / subset, root / "images", root})
    if (auto found = find_inside(dir, name)) return *found;
  return join_inside(root / "images", name);
}

RawImage read_image(const XmlElement& el, const fs::path& root, Context& c, std::string& subset) {
  RawImage image;
  const std::string where = "image " + quote(el.attribute("name") ? *el.attribute("name") : "");
  image.id = integer_attribute(el, "id", c, where);
  image.file_name = require_attribute(el, "name", c.file, where);
  image.source = c.file.string() + ": line " + std::to_string(el.line);
  if (el.attribute("width") || el.attribute("height")) {
    image.width = integer_attribute(el, "width", c, where);
    image.height = integer_attribute(el, "height", c, where);
    if (image.width <= 0 || image.height <= 0)
      fail_at(c.file, el.line,
              where + ": width/height must be positive, got " + std::to_string(image.width) + "x" +
                  std::to_string(image.height));
  }
  subset = el.attribute("subset") ? *el.attribute("subset") : "default";
  image.path = locate(root, subset, image.file_name);
  for (size_t k = 0; k < el.children.size(); ++k) {
    const XmlElement& shape = el.children[k];
    const std::string label = shape.attribute("label") ? *shape.attribute("label") : "";
    if (auto o = read_shape(shape, label, {image.width, image.height}, c, where))
      image.objects.push_back(std::move(*o));
  }
  return image;
}

// The <image> of each frame a track draws on, made from the frame number where the dump has none.
RawImage& frame_image(int64_t frame,
                      std::map<int64_t, RawImage>& images,
                      const ImageIndex& index,
                      const fs::path& root,
                      const std::array<int64_t, 2>& original_size) {
  auto it = images.find(frame);
  if (it != images.end()) return it->second;
  RawImage& image = images[frame];
  char stem[32];
  std::snprintf(stem, sizeof stem, "frame_%06lld", static_cast<long long>(frame));
  image.id = frame;
  const fs::path* found = index.find(stem);
  image.file_name = found ? found->filename().string() : std::string(stem) + ".png";
  image.path = found ? *found : root / "images" / image.file_name;
  image.width = original_size[0], image.height = original_size[1];
  return image;
}

std::array<int64_t, 2> original_size(const XmlElement& doc, Context& c) {
  const XmlElement* meta = doc.child("meta");
  const XmlElement* task = meta ? meta->child("task") : nullptr;
  const XmlElement* size = task ? task->child("original_size") : nullptr;
  if (!size) return {0, 0};
  const double w = child_number(*size, "width", c.file, "original_size"),
               h = child_number(*size, "height", c.file, "original_size");
  if (!(w > 0 && h > 0 && w < 1e9 && h < 1e9)) fail_at(c.file, size->line, "original_size must be positive");
  return {static_cast<int64_t>(w), static_cast<int64_t>(h)};
}

void read_tracks(const XmlElement& doc, const fs::path& root, Context& c, std::map<int64_t, RawImage>& frames) {
  const auto tracks = doc.children_named("track");
  if (tracks.empty()) return;
  const auto index = index_images(root / "images");
  const auto size = original_size(doc, c);
  for (const XmlElement* track : tracks) {
    const std::string where = "track " + quote(track->attribute("id") ? *track->attribute("id") : "");
    const std::string label = track->attribute("label") ? *track->attribute("label") : "";
    for (const XmlElement& shape : track->children) {
      if (!shape.attribute("frame")) continue;
      const int64_t frame = integer_attribute(shape, "frame", c, where);
      const auto known = frames.find(frame);
      const std::array<int64_t, 2> image_size =
          known != frames.end() ? std::array<int64_t, 2>{known->second.width, known->second.height} : size;
      if (auto o = read_shape(shape, label, image_size, c, where)) {
        RawImage& image = frame_image(frame, frames, index, root, size);
        image.source = c.file.string() + ": line " + std::to_string(shape.line);
        image.objects.push_back(std::move(*o));
      }
    }
  }
}

}  // namespace

RawExport read_cvat_xml(const fs::path& root) {
  const fs::path file = find_cvat_xml(root);
  const XmlElement doc = read_xml_file(file);
  if (doc.name != "annotations") fail_at(file, doc.line, "root element is <" + doc.name + ">, expected <annotations>");
  RawExport data;
  data.format = "cvat";
  data.labels = read_labels(doc, file);
  std::error_code ec;
  Context c{file, {}, 0, 0, 16 * static_cast<uint64_t>(fs::file_size(file, ec)) + (uint64_t{1} << 24)};
  for (size_t i = 0; i < data.labels.size(); ++i) c.label_of[data.labels[i]] = static_cast<int64_t>(i);
  std::map<std::string, std::map<int64_t, RawImage>> subsets;  // subset -> frame -> image
  for (const XmlElement* el : doc.children_named("image")) {
    std::string subset;
    RawImage image = read_image(*el, root, c, subset);
    const int64_t id = image.id;
    if (!subsets[subset].emplace(id, std::move(image)).second)
      fail_at(file, el->line, "image id " + std::to_string(id) + " appears twice in subset " + quote(subset));
  }
  read_tracks(doc, root, c, subsets[subsets.size() == 1 ? subsets.begin()->first : "default"]);
  for (auto& [name, images] : subsets) {
    RawSubset subset{name, file, {}};
    for (auto& [id, image] : images) subset.images.push_back(std::move(image));
    if (!subset.images.empty()) data.subsets.push_back(std::move(subset));
  }
  if (c.outside)
    data.warnings.push_back(std::to_string(c.outside) + " shapes outside the frame (outside=\"1\") are left out");
  return data;
}

}  // namespace detr::datasets::formats
