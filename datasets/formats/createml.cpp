#include "datasets/formats/createml.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "datasets/formats/text.h"
#include "datasets/json_reader.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

RawObject read_annotation(const json& a, const std::string& where, const JsonReader& r, LabelNumbering& labels) {
  RawObject o;
  o.where = where;
  const std::string label = r.string(r.field(a, "label", where), "label", where);
  if (label.empty()) r.fail(where, "'label' is empty");
  o.label = labels.of(label);
  const json& c = r.field(a, "coordinates", where);
  const std::string at = where + ".coordinates";
  const double x = r.number(r.field(c, "x", at), "x", at), y = r.number(r.field(c, "y", at), "y", at);
  const double w = r.number(r.field(c, "width", at), "width", at), h = r.number(r.field(c, "height", at), "height", at);
  if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(w) || !std::isfinite(h) || w < 0 || h < 0)
    r.fail(at, "must be finite with a non-negative width and height, got " + json_preview(c));
  o.bbox = {x - w / 2, y - h / 2, w, h};
  return o;
}

RawSubset read_subset(const fs::path& dir, const std::string& name, LabelNumbering& labels) {
  const fs::path file = dir / kCreateMlFile;
  const JsonReader r(file);
  const json doc = parse_json(read_text_file(file), file.string());
  if (!doc.is_array()) r.fail("the document must be a list of items, got " + json_preview(doc));
  RawSubset subset{name, file, {}};
  for (size_t i = 0; i < doc.size(); ++i) {
    std::string where = "item " + std::to_string(i);
    const std::string image_name = r.string(r.field(doc[i], "image", where), "image", where);
    where += " (" + quote(image_name) + ")";
    RawImage image;
    image.id = static_cast<int64_t>(i) + 1;
    image.file_name = image_name;
    image.path = join_inside(dir, image_name);
    image.source = file.string();
    if (const json* anns = JsonReader::optional(doc[i], "annotations")) {
      if (!anns->is_array()) r.fail(where, "'annotations' must be a list, got " + json_preview(*anns));
      for (size_t k = 0; k < anns->size(); ++k)
        image.objects.push_back(
            read_annotation((*anns)[k], where + ": annotations[" + std::to_string(k) + "]", r, labels));
    }
    subset.images.push_back(std::move(image));
  }
  return subset;
}

}  // namespace

std::vector<fs::path> createml_dirs(const fs::path& root) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  if (fs::is_regular_file(root / kCreateMlFile, ec)) return {root};
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && fs::is_regular_file(e.path() / kCreateMlFile, ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

RawExport read_createml(const fs::path& root) {
  RawExport data;
  data.format = "createml";
  LabelNumbering labels;
  for (const auto& dir : createml_dirs(root))
    data.subsets.push_back(read_subset(dir, dir == root ? "default" : dir.filename().string(), labels));
  if (data.subsets.empty()) throw std::runtime_error(root.string() + ": no " + kCreateMlFile + " (CreateML)");
  check_labels(labels.names, root);
  data.labels = std::move(labels.names);
  sort_labels(data);
  return data;
}

}  // namespace detr::datasets::formats
