#include "datasets/formats/kitti.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> label_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// One label line as an object.
RawObject read_line(std::string_view line, int64_t number, const fs::path& file, LabelNumbering& labels) {
  const auto fields = split_whitespace(line);
  if (fields.size() != 15 && fields.size() != 16)
    fail_at(file, number, "a KITTI line has 15 fields (16 with a score), got " + std::to_string(fields.size()));
  static const char* kNames[] = {"type",   "truncated", "occluded", "alpha", "left", "top", "right",      "bottom",
                                 "height", "width",     "length",   "x",     "y",    "z",   "rotation_y", "score"};
  double v[16] = {};
  for (size_t i = 1; i < fields.size(); ++i) {
    const auto d = parse_double(fields[i]);
    if (!d) fail_at(file, number, std::string(kNames[i]) + " must be a finite number, got " + quote(fields[i]));
    v[i] = *d;
  }
  if (v[6] < v[4] || v[7] < v[5])
    fail_at(file, number,
            "box right/bottom " + quote(fields[6]) + "/" + quote(fields[7]) + " is left of or above left/top " +
                quote(fields[4]) + "/" + quote(fields[5]));
  RawObject o;
  o.where = "line " + std::to_string(number);
  const std::string type(fields[0]);
  o.label = labels.of(type);
  o.iscrowd = type == "DontCare";
  o.bbox = {v[4], v[5], v[6] - v[4], v[7] - v[5]};
  return o;
}

RawSubset read_subset(const fs::path& dir, const std::string& name, LabelNumbering& labels) {
  RawSubset subset{name, dir / "label_2", {}};
  const ImageIndex index = index_images(dir / "image_2");
  std::map<std::string, RawImage> by_stem;
  for (const auto& file : label_files(dir / "label_2")) {
    RawImage& image = by_stem[file.stem().string()];
    image.source = file.string();
    const std::string text = read_text_file(file);
    const auto lines = split_lines(text);
    for (size_t i = 0; i < lines.size(); ++i)
      if (!trim(lines[i]).empty())
        image.objects.push_back(read_line(lines[i], static_cast<int64_t>(i) + 1, file, labels));
  }
  for (const auto& [stem, path] : index.by_stem) by_stem[stem];  // images without a label file
  for (auto& [stem, image] : by_stem) {
    const fs::path* found = index.find(stem);
    image.path = found ? *found : dir / "image_2" / (stem + ".png");
    image.file_name = image.path.filename().string();
    if (image.source.empty()) image.source = image.path.string();
    image.id = static_cast<int64_t>(subset.images.size()) + 1;
    subset.images.push_back(std::move(image));
  }
  return subset;
}

}  // namespace

std::vector<fs::path> kitti_subset_dirs(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (fs::is_directory(root / "label_2", ec)) out.push_back(root);
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && fs::is_directory(e.path() / "label_2", ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  out.insert(out.end(), dirs.begin(), dirs.end());
  return out;
}

RawExport read_kitti(const fs::path& root) {
  RawExport data;
  data.format = "kitti";
  LabelNumbering labels;
  for (const auto& dir : kitti_subset_dirs(root))
    data.subsets.push_back(read_subset(dir, dir == root ? "default" : dir.filename().string(), labels));
  if (data.subsets.empty()) throw std::runtime_error(root.string() + ": no label_2/ folder (KITTI)");
  check_labels(labels.names, root);
  data.labels = std::move(labels.names);
  if (labels.index.count("DontCare"))
    data.warnings.push_back("DontCare regions are ignore regions of their own category 'DontCare'");
  return data;
}

}  // namespace detr::datasets::formats
