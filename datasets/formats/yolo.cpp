#include "datasets/formats/yolo.h"

#include <set>
#include <stdexcept>

#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

// A path from obj.data or a list ("data/train.txt") relative to the export root.
std::string strip_data_prefix(std::string_view value) {
  std::string v(trim(value));
  for (const char* prefix : {"data/", "./data/", "data\\"})
    if (v.rfind(prefix, 0) == 0) return v.substr(std::string(prefix).size());
  return v;
}

struct ObjData {
  int64_t classes = -1;
  int64_t classes_line = 0;
  std::string names;
  std::vector<std::pair<std::string, std::string>> subsets;  // name, list path
  std::vector<int64_t> subset_lines;
};

ObjData read_obj_data(const fs::path& file) {
  static const std::set<std::string> kNotSubsets = {"classes", "names", "backup", "eval", "results", "top"};
  ObjData d;
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line = trim(lines[i]);
    const int64_t n = static_cast<int64_t>(i) + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) fail_at(file, n, "expected 'key = value', got " + quote(line));
    const std::string key(trim(line.substr(0, eq)));
    const std::string_view value = trim(line.substr(eq + 1));
    if (key == "classes") {
      const auto c = parse_int(value);
      if (!c || *c < 1) fail_at(file, n, "'classes' must be a positive integer, got " + quote(value));
      d.classes = *c, d.classes_line = n;
    } else if (key == "names") {
      d.names = strip_data_prefix(value);
    } else if (!kNotSubsets.count(key)) {
      if (key.empty() || value.empty()) fail_at(file, n, "subset " + quote(key) + " names no list file");
      d.subsets.emplace_back(key, strip_data_prefix(value));
      d.subset_lines.push_back(n);
    }
  }
  if (d.names.empty()) fail_at(file, 0, "no 'names = ...' line (the label list)");
  return d;
}

std::vector<std::string> read_names(const fs::path& file,
                                    int64_t classes,
                                    const fs::path& obj_data,
                                    int64_t classes_line) {
  const std::string text = read_text_file(file);
  std::vector<std::string> labels;
  std::vector<int64_t> lines;
  const auto all = split_lines(text);
  for (size_t i = 0; i < all.size(); ++i)
    if (!trim(all[i]).empty()) {  // Datumaro skips empty lines
      labels.emplace_back(trim(all[i]));
      lines.push_back(static_cast<int64_t>(i) + 1);
    }
  check_labels(labels, file, lines);
  if (labels.empty()) fail_at(file, 0, "no labels");
  if (classes >= 0 && classes != static_cast<int64_t>(labels.size()))
    fail_at(obj_data, classes_line,
            "'classes' is " + std::to_string(classes) + " but " + file.filename().string() + " names " +
                std::to_string(labels.size()) + " labels");
  return labels;
}

// One label file: "class cx cy w h" lines (normalised centre and size).
std::vector<RawObject> read_label_file(const fs::path& file, size_t num_labels) {
  std::vector<RawObject> objects;
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto fields = split_whitespace(lines[i]);
    const int64_t n = static_cast<int64_t>(i) + 1;
    if (fields.empty()) continue;
    if (fields.size() != 5)
      fail_at(file, n,
              "expected 'class cx cy w h' (5 fields), got " + std::to_string(fields.size()) + ": " + quote(lines[i]));
    const auto cls = parse_int(fields[0]);
    if (!cls || *cls < 0 || *cls >= static_cast<int64_t>(num_labels))
      fail_at(file, n, "class must be an integer in [0, " + std::to_string(num_labels) + "), got " + quote(fields[0]));
    double v[4];
    static const char* kNames[] = {"cx", "cy", "w", "h"};
    for (int k = 0; k < 4; ++k) {
      const auto d = parse_double(fields[k + 1]);
      if (!d) fail_at(file, n, std::string(kNames[k]) + " must be a finite number, got " + quote(fields[k + 1]));
      v[k] = *d;
    }
    RawObject o;
    o.label = *cls;
    o.bbox = {v[0] - v[2] / 2, v[1] - v[3] / 2, v[2], v[3]};
    o.normalized = true;
    o.where = "line " + std::to_string(n);
    objects.push_back(std::move(o));
  }
  return objects;
}

RawSubset read_list(const fs::path& root, const std::string& name, const fs::path& list, size_t num_labels) {
  RawSubset subset{name, list, {}};
  const std::string text = read_text_file(list);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto entry = trim(lines[i]);
    const int64_t n = static_cast<int64_t>(i) + 1;
    if (entry.empty()) continue;
    RawImage image;
    image.file_name = strip_data_prefix(entry);
    image.id = static_cast<int64_t>(subset.images.size()) + 1;
    if (image.file_name.find('\0') != std::string::npos) fail_at(list, n, "image name contains a NUL");
    image.path = find_inside(root, image.file_name).value_or(join_inside(root, image.file_name));
    fs::path labels = image.path;
    labels.replace_extension(".txt");
    std::error_code ec;
    if (!fs::is_regular_file(labels, ec))
      fail_at(list, n, "image " + quote(entry) + ": label file " + labels.string() + " not found");
    image.source = labels.string();
    image.objects = read_label_file(labels, num_labels);
    subset.images.push_back(std::move(image));
  }
  return subset;
}

}  // namespace

RawExport read_yolo(const fs::path& root) {
  const fs::path obj_data = root / "obj.data";
  std::error_code ec;
  if (!fs::is_regular_file(obj_data, ec))
    throw std::runtime_error(obj_data.string() + ": not found (YOLO 1.1's obj.data)");
  const ObjData d = read_obj_data(obj_data);
  RawExport data;
  data.format = "yolo";
  const auto names = find_inside(root, d.names);
  if (!names) fail_at(obj_data, 0, "names file " + quote(d.names) + " not found in " + root.string());
  data.labels = read_names(*names, d.classes, obj_data, d.classes_line);
  for (size_t i = 0; i < d.subsets.size(); ++i) {
    const auto& [name, list] = d.subsets[i];
    const auto path = find_inside(root, list);
    if (!path) fail_at(obj_data, d.subset_lines[i], "subset " + quote(name) + ": list " + quote(list) + " not found");
    data.subsets.push_back(read_list(root, name, *path, data.labels.size()));
  }
  return data;
}

}  // namespace detr::datasets::formats
