#include "datasets/formats/labelme.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "datasets/coco_mask.h"
#include "datasets/formats/mask_image.h"
#include "datasets/formats/text.h"
#include "datasets/formats/xml.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

// One folder of XML files, the folder its images are in and the one its mask PNGs are in.
struct Folder {
  std::string subset;
  fs::path xml_dir, image_dir, mask_dir;
};

std::vector<fs::path> xml_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".xml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Folder> folders(const fs::path& root) {
  std::vector<Folder> out;
  std::error_code ec;
  const bool split_layout = fs::is_directory(root / "Annotations", ec);
  const fs::path base = split_layout ? root / "Annotations" : root;
  if (!xml_files(base).empty()) out.push_back({"default", base, split_layout ? root / "Images" : root, root / "Masks"});
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(base, ec))
    if (e.is_directory(ec) && !xml_files(e.path()).empty()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    const std::string name = d.filename().string();
    out.push_back(
        {name, d, split_layout ? root / "Images" / name : d, split_layout ? root / "Masks" / name : d / "Masks"});
  }
  return out;
}

std::vector<double> polygon_points(const XmlElement& polygon, const fs::path& file, const std::string& where) {
  std::vector<double> points;
  for (const XmlElement* pt : polygon.children_named("pt")) {
    points.push_back(child_number(*pt, "x", file, where));
    points.push_back(child_number(*pt, "y", file, where));
  }
  return points;
}

// A mask PNG (Masks/<name>): its pixels where a colour channel is nonzero (Datumaro's asset: colour
// with alpha on the mask, (0, 0, 0, 0) elsewhere).
Rle read_mask_png(const fs::path& png, const fs::path& file, int64_t line, const std::string& where) {
  try {
    const MaskImage img = read_mask_image(png);
    const int colours = img.channels >= 3 ? 3 : 1;  // alpha is no foreground
    std::vector<uint8_t> any(static_cast<size_t>(img.height * img.width), 0);
    for (size_t p = 0; p < any.size(); ++p)
      for (int ch = 0; ch < colours; ++ch) any[p] |= img.pixels[p * img.channels + ch];
    return encode(any.data(), img.height, img.width, MaskLayout::row_major);
  } catch (const std::runtime_error& e) {
    fail_at(file, line, where + ": mask " + png.string() + ": " + e.what());
  }
}

// Whether the object's <attributes> ("a=b, c, ...") name is_crowd (bare, =true or =1).
bool is_crowd(const XmlElement& obj) {
  const XmlElement* attributes = obj.child("attributes");
  if (!attributes) return false;
  for (const auto piece : split(attributes->text, ',')) {
    const auto t = trim(piece);
    if (t == "is_crowd" || t == "is_crowd=true" || t == "is_crowd=1") return true;
  }
  return false;
}

// Masks read for one XML file (an object naming a PNG another has named reads it once), and the <segm>s
// without their PNG over all files.
struct MaskState {
  std::map<fs::path, Rle> decoded;
  int64_t missing = 0;
};

// A <segm>: its mask PNG when the folder has it (the box then the mask's), else its <box> alone
// (counted in `missing`).
void read_segm(const XmlElement& segm,
               RawObject& o,
               const Folder& folder,
               const fs::path& file,
               const std::string& where,
               MaskState& masks) {
  const XmlElement& box = require_child(segm, "box", file, where);
  const double x0 = child_number(box, "xmin", file, where), y0 = child_number(box, "ymin", file, where);
  o.bbox = {x0, y0, child_number(box, "xmax", file, where) - x0, child_number(box, "ymax", file, where) - y0};
  const XmlElement* mask = segm.child("mask");
  const std::string name = mask ? std::string(trim(mask->text)) : std::string();
  const auto png = name.empty() ? std::nullopt : find_inside(folder.mask_dir, name);
  if (!png) {
    ++masks.missing;
    return;
  }
  o.iscrowd = true;  // a mask, as CVAT's COCO export writes it; --crowd decides (cvat_policy.h)
  auto cached = masks.decoded.find(*png);
  if (cached == masks.decoded.end())
    cached = masks.decoded.emplace(*png, read_mask_png(*png, file, mask->line, where)).first;
  o.mask = cached->second;
  o.bbox = to_bbox(*o.mask);
  o.area = static_cast<double>(area(*o.mask));
}

// One <object>; nullopt for a deleted one.
std::optional<RawObject> read_object(const XmlElement& obj,
                                     size_t k,
                                     LabelNumbering& labels,
                                     const Folder& folder,
                                     const fs::path& file,
                                     MaskState& masks) {
  const std::string where = "object " + std::to_string(k);
  if (const XmlElement* d = obj.child("deleted"); d && trim(d->text) == "1") return std::nullopt;
  RawObject o;
  o.where = where + " (line " + std::to_string(obj.line) + ")";
  const XmlElement& name = require_child(obj, "name", file, where);
  const std::string label(trim(name.text));
  if (label.empty()) fail_at(file, name.line, where + ": empty name");
  o.label = labels.of(label);
  const XmlElement* type = obj.child("type");
  const bool is_box = type && trim(type->text) == "bounding_box";
  if (const XmlElement* polygon = obj.child("polygon")) {
    auto points = polygon_points(*polygon, file, where);
    const size_t min_points = is_box ? 2 : 3;
    if (points.size() < 2 * min_points)
      fail_at(file, polygon->line,
              where + ": polygon has " + std::to_string(points.size() / 2) + " points, at least " +
                  std::to_string(min_points) + " needed");
    o.bbox = polygon_bbox(points);
    if (!is_box) o.polygons.push_back(std::move(points));
  } else if (const XmlElement* segm = obj.child("segm")) {
    read_segm(*segm, o, folder, file, where, masks);
  } else {
    fail_at(file, obj.line, where + ": object has neither <polygon> nor <segm>");
  }
  if (is_crowd(obj)) o.iscrowd = true;
  return o;
}

int64_t image_size(const XmlElement& doc, const char* name, const fs::path& file) {
  const XmlElement* size = doc.child("imagesize");
  if (!size) return 0;
  const XmlElement& el = require_child(*size, name, file, "imagesize");
  const auto v = parse_int(el.text, /*allow_integral_decimal=*/true);
  if (!v || *v <= 0)
    fail_at(file, el.line, std::string("imagesize.") + name + " must be a positive integer, got " + quote(el.text));
  return *v;
}

RawImage read_image(const fs::path& xml, const Folder& folder, LabelNumbering& labels, MaskState& masks) {
  const XmlElement doc = read_xml_file(xml);
  if (doc.name != "annotation") fail_at(xml, doc.line, "root element is <" + doc.name + ">, expected <annotation>");
  RawImage image;
  image.source = xml.string();
  image.height = image_size(doc, "nrows", xml);
  image.width = image_size(doc, "ncols", xml);
  const XmlElement* f = doc.child("filename");
  const std::string file_name = f ? std::string(trim(f->text)) : std::string();
  auto found = file_name.empty() ? std::nullopt : find_inside(folder.image_dir, file_name);
  if (!found) found = find_image_by_stem(folder.image_dir, xml.stem().string());
  image.file_name = found               ? found->lexically_relative(folder.image_dir).string()
                    : file_name.empty() ? xml.stem().string() + ".jpg"
                                        : file_name;
  image.path = found ? *found : join_inside(folder.image_dir, image.file_name);
  const auto objects = doc.children_named("object");
  for (size_t k = 0; k < objects.size(); ++k)
    if (auto o = read_object(*objects[k], k, labels, folder, xml, masks)) image.objects.push_back(std::move(*o));
  masks.decoded.clear();
  return image;
}

}  // namespace

RawExport read_labelme(const fs::path& root) {
  RawExport data;
  data.format = "labelme";
  LabelNumbering labels;
  MaskState masks;
  for (const auto& folder : folders(root)) {
    RawSubset subset{folder.subset, folder.xml_dir, {}};
    for (const auto& xml : xml_files(folder.xml_dir)) {
      RawImage image = read_image(xml, folder, labels, masks);
      image.id = static_cast<int64_t>(subset.images.size()) + 1;
      subset.images.push_back(std::move(image));
    }
    data.subsets.push_back(std::move(subset));
  }
  if (data.subsets.empty()) throw std::runtime_error(root.string() + ": no LabelMe XML files");
  if (masks.missing)
    data.warnings.push_back(std::to_string(masks.missing) +
                            " masks (<segm>) have no PNG in Masks/: those objects are their <box> alone");
  check_labels(labels.names, root);
  data.labels = std::move(labels.names);
  return data;
}

}  // namespace detr::datasets::formats
