#include "datasets/formats/voc.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "datasets/coco_mask.h"
#include "datasets/formats/mask_image.h"
#include "datasets/formats/text.h"
#include "datasets/formats/xml.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

const std::vector<std::string>& voc_default_labels() {
  static const std::vector<std::string> kLabels = {
      "aeroplane",   "bicycle", "bird",  "boat",      "bottle", "bus",         "car",   "cat",  "chair", "cow",
      "diningtable", "dog",     "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"};
  return kLabels;
}

namespace {

constexpr const char* kBackground = "background";

// labelmap.txt: the label names in order, `background` left out.
std::vector<std::string> read_labelmap(const fs::path& file) {
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  std::vector<std::string> labels;
  std::vector<int64_t> numbers;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line = trim(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    const std::string name(trim(line.substr(0, line.find(':'))));
    if (name.empty()) fail_at(file, static_cast<int64_t>(i) + 1, "empty label name in " + quote(line));
    if (name == kBackground) continue;
    labels.push_back(name);
    numbers.push_back(static_cast<int64_t>(i) + 1);
  }
  check_labels(labels, file, numbers);
  if (labels.empty()) fail_at(file, 0, "no labels besides background");
  return labels;
}

// ImageSets/Main/<subset>.txt files, per-class lists (<label>_<subset>.txt) left out.
std::vector<fs::path> subset_files(const fs::path& main, const std::vector<std::string>& labels) {
  std::set<std::string> stems, label_names(labels.begin(), labels.end());
  label_names.insert(kBackground);
  label_names.insert("ignored");
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(main, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".txt") {
      files.push_back(e.path());
      stems.insert(e.path().stem().string());
    }
  std::sort(files.begin(), files.end());
  std::vector<fs::path> subsets;
  for (const auto& f : files) {
    const std::string stem = f.stem().string();
    bool per_class = false;
    for (size_t us = stem.find('_'); us != std::string::npos && !per_class; us = stem.find('_', us + 1))
      per_class = label_names.count(stem.substr(0, us)) && stems.count(stem.substr(us + 1));
    if (!per_class) subsets.push_back(f);
  }
  return subsets;
}

// The ids of a subset file: the first field of each line, or a "quoted id" with spaces.
std::vector<std::string> read_ids(const fs::path& file) {
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  std::vector<std::string> ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line = trim(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    if (line.find('\0') != std::string_view::npos) fail_at(file, static_cast<int64_t>(i) + 1, "id contains a NUL");
    if (line[0] == '"') {
      const size_t end = line.find('"', 1);
      if (end == std::string_view::npos || end == 1)
        fail_at(file, static_cast<int64_t>(i) + 1, "unterminated or empty quoted id " + quote(line));
      ids.emplace_back(line.substr(1, end - 1));
    } else {
      ids.emplace_back(split_whitespace(line).front());
    }
  }
  return ids;
}

int64_t positive_size(const XmlElement& size, const char* name, const fs::path& file) {
  const XmlElement& el = require_child(size, name, file, "size");
  const auto v = parse_int(el.text, /*allow_integral_decimal=*/true);
  if (!v || *v <= 0)
    fail_at(file, el.line, std::string("size.") + name + " must be a positive integer, got " + quote(el.text));
  return *v;
}

// Label indices by name: fixed by labelmap.txt, or growing in order of first appearance (Roboflow's
// layout, which has no label list).
struct LabelMap {
  std::vector<std::string>& names;
  bool grow = false;
  std::map<std::string, int64_t> index;
  std::optional<int64_t> of(const std::string& name) {
    if (const auto it = index.find(name); it != index.end()) return it->second;
    if (!grow) return std::nullopt;
    names.push_back(name);
    return index[name] = static_cast<int64_t>(names.size()) - 1;
  }
};

RawObject read_object(
    const XmlElement& obj, size_t index, LabelMap& label_of, const fs::path& file, int64_t& background) {
  const std::string where = "object " + std::to_string(index);
  RawObject o;
  o.where = where + " (line " + std::to_string(obj.line) + ")";
  const XmlElement& name = require_child(obj, "name", file, where);
  const std::string label(trim(name.text));
  if (label == kBackground && !label_of.index.count(label)) {
    ++background;
  } else if (const auto id = label_of.of(label)) {
    o.label = *id;
  } else {
    fail_at(file, name.line, where + ": name " + quote(label) + " is not in the label map");
  }
  if (const XmlElement* d = obj.child("difficult")) {
    const auto v = parse_int(d->text);
    if (!v || (*v != 0 && *v != 1)) fail_at(file, d->line, where + ": difficult must be 0 or 1, got " + quote(d->text));
    o.iscrowd = *v == 1;
  }
  const XmlElement& box = require_child(obj, "bndbox", file, where);
  const double x0 = child_number(box, "xmin", file, where), y0 = child_number(box, "ymin", file, where);
  const double x1 = child_number(box, "xmax", file, where), y1 = child_number(box, "ymax", file, where);
  o.bbox = {x0, y0, x1 - x0, y1 - y0};
  return o;
}

// SegmentationObject/<id>.png: object i's mask is the pixels of the VOC colour map's index i + 1 (255
// is the boundary, no object's). Objects with no pixel there keep their box alone.
void read_instance_masks(const fs::path& png, std::vector<RawObject>& objects) {
  MaskImage img;
  try {
    img = read_mask_image(png);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(png.string() + ": " + e.what());
  }
  if (img.channels < 3) throw std::runtime_error(png.string() + ": expected a colour (VOC colour map) image");
  // Every object's RLE in one column-major pass: end[i] is where object i's last run ends.
  const int64_t h = img.height, w = img.width;
  std::vector<Rle> rles(objects.size(), Rle{h, w, {}});
  std::vector<int64_t> end(objects.size(), 0);
  for (int64_t x = 0; x < w; ++x)
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* px = &img.pixels[static_cast<size_t>((y * w + x) * img.channels)];
      const int k = voc_color_index(px[0], px[1], px[2]) - 1;
      if (k < 0 || k >= static_cast<int>(objects.size()) || k == 254) continue;
      const int64_t q = x * h + y;
      auto& counts = rles[k].counts;
      if (q == end[k] && !counts.empty())
        ++counts.back();
      else
        counts.push_back(static_cast<uint32_t>(q - end[k])), counts.push_back(1);
      end[k] = q + 1;
    }
  for (size_t i = 0; i < objects.size(); ++i) {
    if (rles[i].counts.empty()) continue;
    if (h * w > end[i]) rles[i].counts.push_back(static_cast<uint32_t>(h * w - end[i]));
    objects[i].mask = std::move(rles[i]);
  }
}

// The image of annotation file `xml` (absent: an image without objects), found in `images`.
RawImage read_annotation(
    const fs::path& xml, const fs::path& images, const std::string& id, LabelMap& label_of, int64_t& background) {
  RawImage image;
  image.source = xml.string();
  std::string file_name;
  std::error_code ec;
  if (fs::is_regular_file(xml, ec)) {
    const XmlElement doc = read_xml_file(xml);
    if (doc.name != "annotation") fail_at(xml, doc.line, "root element is <" + doc.name + ">, expected <annotation>");
    if (const XmlElement* f = doc.child("filename")) file_name = std::string(trim(f->text));
    if (const XmlElement* size = doc.child("size")) {
      image.width = positive_size(*size, "width", xml);
      image.height = positive_size(*size, "height", xml);
    }
    const auto objects = doc.children_named("object");
    for (size_t i = 0; i < objects.size(); ++i)
      image.objects.push_back(read_object(*objects[i], i, label_of, xml, background));
  }
  auto found = file_name.empty() ? std::nullopt : find_inside(images, file_name);
  if (!found) found = find_image_by_stem(images, id);
  image.file_name = found ? found->lexically_relative(images).string() : file_name.empty() ? id + ".jpg" : file_name;
  image.path = found ? *found : join_inside(images, image.file_name);
  return image;
}

// Whether the file's first 64 KiB hold a VOC element LabelMe's XML has not: <bndbox> (an object's
// box), <segmented> or <database> (Roboflow writes both, also for an image without objects).
bool head_looks_like_voc(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string head(64 << 10, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  for (const char* tag : {"<bndbox", "<segmented>", "<database>"})
    if (head.find(tag) != std::string::npos) return true;
  return false;
}

std::vector<fs::path> xml_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".xml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Roboflow's layout: every <subset>/<stem>.xml beside its image; labels by first appearance.
void read_roboflow(const std::vector<fs::path>& dirs, RawExport& data, int64_t& background) {
  LabelMap label_of{data.labels, /*grow=*/true, {}};
  for (const auto& dir : dirs) {
    RawSubset subset{dir.filename().string(), dir, {}};
    for (const auto& xml : xml_files(dir)) {
      RawImage image = read_annotation(xml, dir, xml.stem().string(), label_of, background);
      image.id = static_cast<int64_t>(subset.images.size()) + 1;
      subset.images.push_back(std::move(image));
    }
    data.subsets.push_back(std::move(subset));
  }
  check_labels(data.labels, dirs.front());
  sort_labels(data);
}

// ImageSets/Main/<subset>.txt listing ids of Annotations/<id>.xml and JPEGImages/.
void read_image_sets(const fs::path& root, RawExport& data, int64_t& background) {
  const fs::path labelmap = root / "labelmap.txt";
  std::error_code ec;
  data.labels = fs::is_regular_file(labelmap, ec) ? read_labelmap(labelmap) : voc_default_labels();
  LabelMap label_of{data.labels, /*grow=*/false, {}};
  for (size_t i = 0; i < data.labels.size(); ++i) label_of.index[data.labels[i]] = static_cast<int64_t>(i);
  const fs::path main = root / "ImageSets" / "Main";
  if (!fs::is_directory(main, ec)) throw std::runtime_error(main.string() + ": not found (VOC's subset lists)");
  for (const auto& file : subset_files(main, data.labels)) {
    RawSubset subset{file.stem().string(), file, {}};
    for (const auto& id : read_ids(file)) {
      const fs::path xml = join_inside(root / "Annotations", id + ".xml");
      RawImage image = read_annotation(xml, root / "JPEGImages", id, label_of, background);
      const fs::path png = join_inside(root / "SegmentationObject", id + ".png");
      if (fs::is_regular_file(png, ec)) read_instance_masks(png, image.objects);
      image.id = static_cast<int64_t>(subset.images.size()) + 1;
      subset.images.push_back(std::move(image));
    }
    data.subsets.push_back(std::move(subset));
  }
}

}  // namespace

std::vector<fs::path> voc_roboflow_dirs(const fs::path& root) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  if (fs::is_directory(root / "Annotations", ec)) return dirs;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory(ec)) continue;
    const auto files = xml_files(e.path());
    if (files.empty() || peek_xml_root(files.front()) != "annotation") continue;
    const size_t look = std::min<size_t>(files.size(), 64);  // the first files, enough for one with a box
    if (std::any_of(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(look), head_looks_like_voc))
      dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

RawExport read_voc(const fs::path& root) {
  RawExport data;
  data.format = "voc";
  int64_t background = 0;
  if (const auto dirs = voc_roboflow_dirs(root); !dirs.empty())
    read_roboflow(dirs, data, background);
  else
    read_image_sets(root, data, background);
  if (background)
    data.warnings.push_back(std::to_string(background) +
                            " objects named 'background' (VOC's class 0) are not trained on");
  return data;
}

}  // namespace detr::datasets::formats
