#include "datasets/formats/ultralytics.h"

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>

#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxYamlBytes = uint64_t{1} << 20;  // a data.yaml of 80 names is 1 KiB

// The line without its comment: '#' at its start or after whitespace, outside quotes.
std::string_view strip_comment(std::string_view line) {
  char quote_char = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote_char) {
      if (c == quote_char) quote_char = 0;
    } else if (c == '\'' || c == '"') {
      if (i == 0 || line[i - 1] == ' ' || line[i - 1] == '[' || line[i - 1] == ',' || line[i - 1] == '-')
        quote_char = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

// A quoted scalar's text: 'single' ('' is a quote) or "double" (\" \\ \/ \n \t escapes).
std::string unquote(std::string_view v, const fs::path& file, int64_t line) {
  const char q = v.front();
  std::string out;
  size_t i = 1;
  for (; i < v.size(); ++i) {
    const char c = v[i];
    if (c == q && q == '\'' && i + 1 < v.size() && v[i + 1] == '\'') {
      out += '\'', ++i;
    } else if (c == q) {
      break;
    } else if (q == '"' && c == '\\' && i + 1 < v.size()) {
      const char e = v[++i];
      if (e != '"' && e != '\\' && e != '/' && e != 'n' && e != 't')
        fail_at(file, line, "escape \\" + std::string(1, e) + " in " + quote(v) + " is not read");
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
    } else {
      out += c;
    }
  }
  if (i + 1 != v.size()) fail_at(file, line, "quoted value " + quote(v) + " is unterminated or has text after it");
  return out;
}

// A YAML scalar: quoted, else plain text (trimmed). What needs more YAML than that is refused.
std::string scalar(std::string_view v, const fs::path& file, int64_t line) {
  v = trim(v);
  if (v.empty()) return "";
  if (v.front() == '\'' || v.front() == '"') return unquote(v, file, line);
  if (std::string("{[]}|>&*!%@`").find(v.front()) != std::string::npos || v.find(": ") != std::string_view::npos)
    fail_at(file, line, "value " + quote(v) + " is not read (data.yaml is read as scalars, lists and the names map)");
  return std::string(v);
}

// A flow list "[a, 'b', 3]" as its scalars.
std::vector<std::string> flow_list(std::string_view v, const fs::path& file, int64_t line) {
  if (v.size() < 2 || v.back() != ']') fail_at(file, line, "list " + quote(v) + " does not end with ']'");
  const std::string_view inner = trim(v.substr(1, v.size() - 2));
  std::vector<std::string> items;
  if (inner.empty()) return items;
  size_t start = 0;
  char quote_char = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    const char c = i < inner.size() ? inner[i] : ',';
    if (quote_char) {
      if (c == quote_char) quote_char = 0;
    } else if ((c == '\'' || c == '"') && trim(inner.substr(start, i - start)).empty()) {
      quote_char = c;
    } else if (c == ',') {
      const std::string_view item = trim(inner.substr(start, i - start));
      if (item.empty() && i < inner.size()) fail_at(file, line, "empty item in list " + quote(v));
      if (!item.empty()) items.push_back(scalar(item, file, line));
      start = i + 1;
    }
  }
  if (quote_char) fail_at(file, line, "unterminated quote in list " + quote(v));
  return items;
}

// "key: value" or "key:" split at the first ": " (or a final ':'); nullopt when the line has neither.
std::optional<std::pair<std::string, std::string_view>> key_value(std::string_view s) {
  size_t colon = s.find(": ");
  if (colon == std::string_view::npos && !s.empty() && s.back() == ':') colon = s.size() - 1;
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string key(trim(s.substr(0, colon)));
  if (key.size() >= 2 && (key.front() == '\'' || key.front() == '"') && key.back() == key.front())
    key = key.substr(1, key.size() - 2);
  return std::make_pair(key, trim(s.substr(colon + 1)));
}

bool is_subset_key(const std::string& key) { return key == "train" || key == "val" || key == "test"; }

// data.yaml line by line: top-level keys, and the indented lines of the block a key opened.
struct YamlReader {
  const fs::path& file;
  UltralyticsYaml y;
  std::map<std::string, int64_t> seen;  // top-level key -> line
  std::string block;                    // the key whose indented lines follow
  size_t block_indent = 0;
  std::map<int64_t, std::pair<std::string, int64_t>> names_map;  // id -> name, line
  std::vector<int64_t> name_lines;
  bool names_as_list = false;
  std::optional<int64_t> nc;

  void top_level(std::string_view content, int64_t n);
  void set_value(const std::string& key, std::string_view value, int64_t n);
  void indented(std::string_view content, size_t indent, int64_t n);
  void kpt_shape(std::string_view value, int64_t n);
  void finish();
};

void YamlReader::top_level(std::string_view content, int64_t n) {
  if (content == "---" && seen.empty()) return;
  const auto kv = key_value(content);
  if (!kv) fail_at(file, n, "expected 'key: value', got " + quote(content));
  const auto& [key, value] = *kv;
  if (!seen.emplace(key, n).second)
    fail_at(file, n, "key " + quote(key) + " appears twice (also line " + std::to_string(seen[key]) + ")");
  block = value.empty() ? key : "";
  block_indent = 0;
  if (key == "kpt_shape" && value.empty()) fail_at(file, n, "'kpt_shape' must be a flow list [keypoints, 2 or 3]");
  if (is_subset_key(key)) y.subsets.push_back({key, {}, n});
  if (!value.empty()) set_value(key, value, n);
}

void YamlReader::set_value(const std::string& key, std::string_view value, int64_t n) {
  const bool list = value.front() == '[';
  if (key == "path") {
    y.path = scalar(value, file, n);
  } else if (is_subset_key(key)) {
    y.subsets.back().values = list ? flow_list(value, file, n) : std::vector<std::string>{scalar(value, file, n)};
  } else if (key == "names") {
    if (!list) fail_at(file, n, "'names' must be a list or a map of id: name lines, got " + quote(value));
    y.names = flow_list(value, file, n);
    name_lines.assign(y.names.size(), n);
    names_as_list = true;
  } else if (key == "nc") {
    nc = parse_int(scalar(value, file, n));
    if (!nc || *nc < 1) fail_at(file, n, "'nc' must be a positive integer, got " + quote(value));
  } else if (key == "kpt_shape") {
    kpt_shape(value, n);
  } else if (list) {
    flow_list(value, file, n);  // checked, not used (flip_idx, ...)
  } else {
    scalar(value, file, n);  // checked, not used (download, ...)
  }
}

void YamlReader::kpt_shape(std::string_view value, int64_t n) {
  const auto items = value.front() == '[' ? flow_list(value, file, n) : std::vector<std::string>{};
  const auto k = items.size() == 2 ? parse_int(items[0]) : std::nullopt;
  const auto d = items.size() == 2 ? parse_int(items[1]) : std::nullopt;
  if (!k || !d || *k < 1 || *k > 10000 || (*d != 2 && *d != 3))
    fail_at(file, n, "'kpt_shape' must be [keypoints, 2 or 3], got " + quote(value));
  y.kpt_values = *k * *d;
}

void YamlReader::indented(std::string_view content, size_t indent, int64_t n) {
  if (block.empty()) fail_at(file, n, "indented line outside a block: " + quote(content));
  if (block_indent == 0) block_indent = indent;
  if (indent != block_indent)
    fail_at(file, n,
            "indentation " + std::to_string(indent) + " (the block under " + quote(block) + " has " +
                std::to_string(block_indent) + "): nested YAML is not read");
  const bool item = content == "-" || content.substr(0, 2) == "- ";
  if (block != "names" && !is_subset_key(block)) {  // an unused key's block (roboflow:, flip_idx:)
    const auto kv = item ? std::nullopt : key_value(content);
    if (!item && (!kv || kv->second.empty()))
      fail_at(file, n, "line " + quote(content) + " under " + quote(block) + " is not read");
    scalar(item ? content.substr(1) : kv->second, file, n);  // checked, not used
  } else if (item && block == "names") {
    if (!names_map.empty()) fail_at(file, n, "'names' mixes '- name' and 'id: name' lines");
    y.names.push_back(scalar(content.substr(1), file, n)), name_lines.push_back(n);
    names_as_list = true;
  } else if (item && is_subset_key(block)) {
    y.subsets.back().values.push_back(scalar(content.substr(1), file, n));
  } else if (const auto kv = key_value(content); kv && block == "names") {
    const auto id = parse_int(kv->first);
    if (names_as_list) fail_at(file, n, "'names' mixes '- name' and 'id: name' lines");
    if (!id || *id < 0 || *id >= 100000)
      fail_at(file, n, "names id must be an integer in [0, 100000), got " + quote(kv->first));
    if (!names_map.emplace(*id, std::make_pair(scalar(kv->second, file, n), n)).second)
      fail_at(file, n, "names id " + std::to_string(*id) + " appears twice");
  } else {
    fail_at(file, n, "line " + quote(content) + " under " + quote(block) + " is not read");
  }
}

void YamlReader::finish() {
  if (!names_map.empty()) {
    int64_t expected = 0;
    for (const auto& [id, entry] : names_map) {
      if (id != expected)
        fail_at(file, entry.second,
                "names id " + std::to_string(id) + " follows id " + std::to_string(expected - 1) +
                    ": ids must run 0..N-1 without gaps (no id " + std::to_string(expected) + ")");
      y.names.push_back(entry.first), name_lines.push_back(entry.second);
      ++expected;
    }
  }
  if (!seen.count("names")) fail_at(file, 0, "no 'names' (the label list)");
  if (y.names.empty()) fail_at(file, seen["names"], "'names' is empty");
  if (nc && *nc != static_cast<int64_t>(y.names.size()))
    fail_at(file, seen["nc"], "'nc' is " + std::to_string(*nc) + " but names holds " + std::to_string(y.names.size()));
  check_labels(y.names, file, name_lines);
}

}  // namespace

UltralyticsYaml parse_ultralytics_yaml(const std::string& text, const fs::path& file) {
  YamlReader r{file, {}, {}, {}, 0, {}, {}, false, std::nullopt};
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t n = static_cast<int64_t>(i) + 1;
    const std::string_view line = strip_comment(lines[i]);
    const std::string_view content = trim(line);
    if (content.empty()) continue;
    const size_t indent = line.find_first_not_of(' ');
    if (line[indent] == '\t') fail_at(file, n, "tab in the indentation (YAML indents with spaces)");
    if (indent == 0)
      r.top_level(content, n);
    else
      r.indented(content, indent, n);
  }
  r.finish();
  return std::move(r.y);
}

namespace {

struct LabelStats {
  int64_t without_label_file = 0, polygons = 0, four_point = 0, poses = 0;
};

// One number of a label line, named for errors ("cx", "x3", "keypoint value 2").
double number(const std::vector<std::string_view>& fields, size_t k, bool polygon, const fs::path& file, int64_t n) {
  static const char* kBox[] = {"cx", "cy", "w", "h"};
  const auto d = parse_double(fields[k]);
  if (!d) {
    const std::string name = polygon  ? std::string(k % 2 ? "x" : "y") + std::to_string((k + 1) / 2)
                             : k <= 4 ? kBox[k - 1]
                                      : "keypoint value " + std::to_string(k - 4);
    fail_at(file, n, name + " must be a finite number, got " + quote(fields[k]));
  }
  return *d;
}

// One label line: a box (5 fields, or 5 + K*D with kpt_shape) or a polygon (an odd count >= 7).
RawObject read_object(const std::vector<std::string_view>& fields,
                      const fs::path& file,
                      int64_t n,
                      size_t num_labels,
                      int64_t kpt_values,
                      LabelStats& stats) {
  const auto cls = parse_int(fields[0]);
  if (!cls || *cls < 0 || *cls >= static_cast<int64_t>(num_labels))
    fail_at(file, n, "class must be an integer in [0, " + std::to_string(num_labels) + "), got " + quote(fields[0]));
  const size_t count = fields.size(), coords = count - 1;
  const bool pose = kpt_values > 0, polygon = !pose && count != 5;
  if (pose && count != static_cast<size_t>(5 + kpt_values))
    fail_at(file, n,
            "expected 'class cx cy w h' and " + std::to_string(kpt_values) + " keypoint values (kpt_shape), got " +
                std::to_string(count) + " fields");
  if (polygon && (coords % 2 != 0 || coords < 6))
    fail_at(file, n,
            "expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...' (3 or more points), got " +
                std::to_string(coords) + " coordinates" + (coords % 2 ? " (an odd count)" : ""));
  RawObject o;
  o.label = *cls;
  o.normalized = true;
  o.where = "line " + std::to_string(n);
  std::vector<double> v;
  for (size_t k = 1; k < count; ++k) v.push_back(number(fields, k, polygon, file, n));
  if (polygon) {
    o.bbox = polygon_bbox(v);
    o.polygons.push_back(std::move(v));
    stats.polygons++, stats.four_point += coords == 8;
  } else {
    o.bbox = {v[0] - v[2] / 2, v[1] - v[3] / 2, v[2], v[3]};
    stats.poses += pose;
  }
  return o;
}

std::vector<RawObject> read_labels(const fs::path& file, size_t num_labels, int64_t kpt_values, LabelStats& stats) {
  std::vector<RawObject> objects;
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto fields = split_whitespace(lines[i]);
    if (!fields.empty())
      objects.push_back(read_object(fields, file, static_cast<int64_t>(i) + 1, num_labels, kpt_values, stats));
  }
  return objects;
}

// Where the image's labels are: its path (under base) with the last images/ folder as labels/ and the
// extension .txt (Ultralytics' img2label_paths); beside the image where no folder is named images.
fs::path label_path(const fs::path& base, const fs::path& image) {
  const fs::path rel = image.lexically_relative(base);
  std::vector<fs::path> parts(rel.begin(), rel.end());
  for (size_t i = parts.size() >= 1 ? parts.size() - 1 : 0; i-- > 0;)
    if (parts[i] == "images") {
      parts[i] = "labels";
      break;
    }
  fs::path out = base;
  for (const auto& p : parts) out /= p;
  return out.replace_extension(".txt");
}

// A path from data.yaml or a list under base; Ultralytics retries "../x" as "x" (Roboflow's exports).
fs::path resolve(const fs::path& base, const std::string& value) {
  std::error_code ec;
  const fs::path p = join_inside(base, value);
  if (value.rfind("../", 0) == 0 && !fs::exists(p, ec)) return join_inside(base, value.substr(3));
  return p;
}

// A list file's images: "./x" from the list's folder, else under base (a leading data/ dropped, as
// CVAT and Datumaro write darknet's paths).
void list_images(const fs::path& base, const fs::path& list, std::vector<fs::path>& out) {
  const std::string text = read_text_file(list);
  for (const auto line : split_lines(text)) {
    std::string entry(trim(line));
    if (entry.empty()) continue;
    if (entry.rfind("./", 0) == 0) {
      out.push_back(join_inside(list.parent_path(), entry.substr(2)));
      continue;
    }
    std::optional<fs::path> found = find_inside(base, entry);
    if (!found && entry.rfind("data/", 0) == 0) found = find_inside(base, entry.substr(5));
    out.push_back(found ? *found : resolve(base, entry.rfind("data/", 0) == 0 ? entry.substr(5) : entry));
  }
}

std::vector<fs::path> subset_images(const fs::path& base, const fs::path& yaml, const UltralyticsYaml::Subset& s) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& value : s.values) {
    const fs::path p = resolve(base, value);
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && is_image_extension(it->path())) found.push_back(it->path());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec) && p.extension() == ".txt") {
      list_images(base, p, out);
    } else if (fs::is_regular_file(p, ec) && is_image_extension(p)) {
      out.push_back(p);
    } else {
      fail_at(yaml, s.line,
              s.key + ": " + quote(value) + " is neither a folder, a list file nor an image (looked for " + p.string() +
                  ")");
    }
  }
  return out;
}

RawSubset read_subset(const fs::path& base,
                      const fs::path& yaml,
                      const UltralyticsYaml& y,
                      const UltralyticsYaml::Subset& s,
                      LabelStats& stats) {
  RawSubset subset{s.key, yaml, {}};
  for (const auto& path : subset_images(base, yaml, s)) {
    RawImage image;
    image.id = static_cast<int64_t>(subset.images.size()) + 1;
    image.path = path;
    image.file_name = path.lexically_relative(base).generic_string();
    const fs::path labels = label_path(base, path);
    image.source = labels.string();
    std::error_code ec;
    if (fs::is_regular_file(labels, ec))
      image.objects = read_labels(labels, y.names.size(), y.kpt_values, stats);
    else
      stats.without_label_file++;
    subset.images.push_back(std::move(image));
  }
  return subset;
}

// The folder data.yaml's paths are under: `path` where it names a folder inside root, else root.
fs::path dataset_base(const fs::path& root, const std::string& path, std::vector<std::string>& warnings) {
  if (path.empty() || fs::path(path).lexically_normal() == "." || fs::path(path).lexically_normal() == "./")
    return root;
  std::error_code ec;
  if (!fs::path(path).is_absolute() && fs::is_directory(join_inside(root, path), ec)) return join_inside(root, path);
  warnings.push_back("data.yaml: path " + quote(path) + " is not a folder under " + root.string() +
                     ": its subsets are read from the data.yaml folder");
  return root;
}

}  // namespace

RawExport read_ultralytics(const fs::path& root) {
  const fs::path yaml = root / "data.yaml";
  std::error_code ec;
  if (!fs::is_regular_file(yaml, ec))
    throw std::runtime_error(yaml.string() + ": not found (Ultralytics YOLO's data.yaml)");
  const UltralyticsYaml y = parse_ultralytics_yaml(read_text_file(yaml, kMaxYamlBytes), yaml);
  RawExport data;
  data.format = "ultralytics";
  data.labels = y.names;
  const fs::path base = dataset_base(root, y.path, data.warnings);
  LabelStats stats;
  for (const auto& s : y.subsets)
    if (!s.values.empty()) data.subsets.push_back(read_subset(base, yaml, y, s, stats));
  if (data.subsets.empty()) fail_at(yaml, 0, "names no train, val or test subset");
  if (stats.four_point)
    data.warnings.push_back(std::to_string(stats.four_point) +
                            " objects are 4-point polygons (oriented boxes): trained as their enclosing "
                            "axis-aligned boxes");
  if (stats.poses)
    data.warnings.push_back(std::to_string(stats.poses) + " pose objects: their boxes train, keypoints are not read");
  if (stats.without_label_file)
    data.warnings.push_back(std::to_string(stats.without_label_file) +
                            " images have no label file: read as images without objects");
  return data;
}

}  // namespace detr::datasets::formats
