#include "datasets/formats/datumaro.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "datasets/coco_mask.h"
#include "datasets/formats/text.h"
#include "datasets/json_reader.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Context {
  JsonReader reader;
  size_t num_labels = 0;
  int64_t outside = 0;
  const fs::path& file() const { return reader.file(); }
  [[noreturn]] void fail(const std::string& where, const std::string& what) const { reader.fail(where, what); }
};

// `where` by value: a temporary name (GCC 14's -Wdangling-reference) is never what the result refers to.
const json& field(const json& obj, const char* key, const Context& c, std::string where) {
  return c.reader.field(obj, key, where);
}

std::vector<double> numbers(const json& v, const char* key, const Context& c, const std::string& where) {
  return c.reader.numbers(v, key, where);
}

std::vector<std::string> read_labels(const json& doc, const Context& c) {
  const json& categories = field(doc, "categories", c, "top level");
  std::vector<std::string> labels;
  const auto it = categories.is_object() ? categories.find("label") : categories.end();
  if (it == categories.end()) c.fail("categories", "no 'label' categories");
  const json& list = field(*it, "labels", c, "categories.label");
  if (!list.is_array()) c.fail("categories.label", "'labels' must be a list, got " + json_preview(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const json& name = field(list[i], "name", c, "categories.label.labels[" + std::to_string(i) + "]");
    if (!name.is_string())
      c.fail("categories.label.labels[" + std::to_string(i) + "]",
             "'name' must be a string, got " + json_preview(name));
    labels.push_back(name.get<std::string>());
  }
  check_labels(labels, c.file());
  return labels;
}

// The mask (its compressed RLE), its box and area.
void read_mask(const json& a, RawObject& o, const Context& c, const std::string& where) {
  const json& rle = field(a, "rle", c, where);
  const json& counts = field(rle, "counts", c, where + ".rle");
  const auto size = numbers(field(rle, "size", c, where + ".rle"), "size", c, where + ".rle");
  if (!counts.is_string() || size.size() != 2) c.fail(where, "'rle' must be {\"counts\": string, \"size\": [h, w]}");
  const auto h = static_cast<int64_t>(size[0]), w = static_cast<int64_t>(size[1]);
  try {
    o.mask = rle_from_string(counts.get<std::string>(), h, w);
    o.bbox = to_bbox(*o.mask);
    o.area = static_cast<double>(area(*o.mask));
    o.iscrowd = true;  // as Datumaro's COCO export writes masks; --crowd decides (cvat_policy.h)
  } catch (const std::runtime_error& e) {
    c.fail(where, std::string("rle: ") + e.what());
  }
}

// attributes[key] is true (Datumaro's outside, is_crowd).
bool attribute_true(const json& a, const char* key) {
  const auto attrs = a.find("attributes");
  if (attrs == a.end() || !attrs->is_object()) return false;
  const auto v = attrs->find(key);
  return v != attrs->end() && v->is_boolean() && v->get<bool>();
}

// A bbox, polygon or mask annotation as an object; nullopt for other types and outside ones.
std::optional<RawObject> read_annotation(const json& a, Context& c, const std::string& where) {
  const json& type = field(a, "type", c, where);
  if (!type.is_string()) c.fail(where, "'type' must be a string, got " + json_preview(type));
  const std::string t = type.get<std::string>();
  if (t != "bbox" && t != "polygon" && t != "mask") return std::nullopt;
  if (attribute_true(a, "outside")) {
    ++c.outside;
    return std::nullopt;
  }
  RawObject o;
  o.where = where;
  const bool crowd = attribute_true(a, "is_crowd");
  const auto label = a.find("label_id");
  if (label != a.end() && !label->is_null()) {
    const auto id = exact_int64(*label);
    if (!id || *id < 0 || *id >= static_cast<int64_t>(c.num_labels))
      c.fail(where, "'label_id' must be an integer in [0, " + std::to_string(c.num_labels) + ") or null, got " +
                        json_preview(*label));
    o.label = *id;
  }
  if (t == "bbox") {
    const auto b = numbers(field(a, "bbox", c, where), "bbox", c, where);
    if (b.size() != 4) c.fail(where, "'bbox' must be [x, y, width, height], got " + json_preview(a.at("bbox")));
    o.bbox = {b[0], b[1], b[2], b[3]};
  } else if (t == "polygon") {
    auto points = numbers(field(a, "points", c, where), "points", c, where);
    if (points.size() < 6 || points.size() % 2)
      c.fail(where, "'points' must hold at least 3 x, y pairs, got " + json_preview(a.at("points")));
    o.bbox = polygon_bbox(points);
    o.polygons.push_back(std::move(points));
  } else {
    read_mask(a, o, c, where);
  }
  if (crowd) o.iscrowd = true;
  return o;
}

RawImage read_item(const json& item, size_t i, const fs::path& root, const std::string& subset, Context& c) {
  std::string where = "items[" + std::to_string(i) + "]";
  const json& id = field(item, "id", c, where);
  if (!id.is_string() && !id.is_number_integer()) c.fail(where, "'id' must be a string, got " + json_preview(id));
  const std::string name = id.is_string() ? id.get<std::string>() : id.dump();
  where = "item " + quote(name);
  RawImage image;
  image.id = static_cast<int64_t>(i) + 1;
  image.source = c.file().string() + ": " + where;
  image.file_name = name + ".jpg";
  const auto info = item.find("image");
  if (info != item.end() && info->is_object()) {
    const auto path = info->find("path");
    if (path != info->end() && path->is_string() && !path->get<std::string>().empty())
      image.file_name = path->get<std::string>();
    const auto size = info->find("size");
    if (size != info->end() && !size->is_null()) {
      const auto hw = numbers(*size, "size", c, where + ".image");
      if (hw.size() != 2 || !(hw[0] >= 1 && hw[1] >= 1 && hw[0] < 1e9 && hw[1] < 1e9) || std::floor(hw[0]) != hw[0] ||
          std::floor(hw[1]) != hw[1])
        c.fail(where + ".image", "'size' must be [height, width] positive integers, got " + json_preview(*size));
      image.height = static_cast<int64_t>(hw[0]), image.width = static_cast<int64_t>(hw[1]);
    }
  }
  auto found = find_inside(root / "images" / subset, image.file_name);
  if (!found) found = find_inside(root / "images", image.file_name);
  image.path = found ? *found : join_inside(root / "images" / subset, image.file_name);
  const json& annotations = field(item, "annotations", c, where);
  if (!annotations.is_array()) c.fail(where, "'annotations' must be a list, got " + json_preview(annotations));
  for (size_t k = 0; k < annotations.size(); ++k)
    if (auto o = read_annotation(annotations[k], c, where + ": annotations[" + std::to_string(k) + "]"))
      image.objects.push_back(std::move(*o));
  return image;
}

json parse_file(const fs::path& file) { return parse_json(read_text_file(file), file.string()); }

}  // namespace

RawExport read_datumaro(const fs::path& root) {
  RawExport data;
  data.format = "datumaro";
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root / "annotations", ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::runtime_error((root / "annotations").string() + ": no Datumaro <subset>.json files");
  int64_t outside = 0;
  for (const auto& file : files) {
    const json doc = parse_file(file);
    Context c{JsonReader(file), 0, 0};
    auto labels = read_labels(doc, c);
    if (file != files.front() && labels != data.labels)
      c.fail("categories.label", "the label list differs from " + files.front().filename().string() + "'s");
    data.labels = std::move(labels);
    c.num_labels = data.labels.size();
    const json& items = field(doc, "items", c, "top level");
    if (!items.is_array()) c.fail("top level", "'items' must be a list, got " + json_preview(items));
    const std::string subset = file.stem().string();
    RawSubset raw{subset, file, {}};
    for (size_t i = 0; i < items.size(); ++i) raw.images.push_back(read_item(items[i], i, root, subset, c));
    data.subsets.push_back(std::move(raw));
    outside += c.outside;
  }
  if (outside) data.warnings.push_back(std::to_string(outside) + " annotations outside the frame are left out");
  return data;
}

}  // namespace detr::datasets::formats
