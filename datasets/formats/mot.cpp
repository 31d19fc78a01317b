#include "datasets/formats/mot.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

struct SeqInfo {
  std::string im_dir = "img1";
  std::string im_ext = ".jpg";
  int64_t width = 0, height = 0;
};

// seqinfo.ini's [Sequence] keys that locate and size the frames (keys case-insensitive).
SeqInfo read_seqinfo(const fs::path& file) {
  SeqInfo info;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return info;
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto line = trim(lines[i]);
    const size_t eq = line.find('=');
    if (line.empty() || line[0] == '[' || line[0] == ';' || line[0] == '#' || eq == std::string_view::npos) continue;
    std::string key(trim(line.substr(0, eq)));
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string_view value = trim(line.substr(eq + 1));
    if (key == "imdir") info.im_dir = std::string(value);
    if (key == "imext") info.im_ext = std::string(value);
    if (key == "imwidth" || key == "imheight") {
      const auto v = parse_int(value);
      if (!v || *v <= 0)
        fail_at(file, static_cast<int64_t>(i) + 1, key + " must be a positive integer, got " + quote(value));
      (key == "imwidth" ? info.width : info.height) = *v;
    }
  }
  return info;
}

std::vector<std::string> read_labels(const fs::path& file) {
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  std::vector<std::string> labels;
  std::vector<int64_t> numbers;
  for (size_t i = 0; i < lines.size(); ++i)
    if (!trim(lines[i]).empty()) {
      labels.emplace_back(trim(lines[i]));
      numbers.push_back(static_cast<int64_t>(i) + 1);
    }
  check_labels(labels, file, numbers);
  if (labels.empty()) fail_at(file, 0, "no labels");
  return labels;
}

// One gt.txt row as an object of its frame.
std::pair<int64_t, RawObject> read_row(
    std::string_view line, int64_t n, const fs::path& file, size_t num_labels, double min_visibility) {
  const auto f = split(line, ',');
  if (f.size() != 9)
    fail_at(file, n,
            "expected 9 fields (frame_id,track_id,x,y,w,h,not_ignored,class_id,visibility), got " +
                std::to_string(f.size()) + ": " + quote(line));
  static const char* kNames[] = {"frame_id", "track_id", "x", "y", "w", "h", "not_ignored", "class_id", "visibility"};
  auto integer = [&](size_t k) {
    const auto v = parse_int(f[k], /*allow_integral_decimal=*/true);
    if (!v) fail_at(file, n, std::string(kNames[k]) + " must be an integer, got " + quote(f[k]));
    return *v;
  };
  auto number = [&](size_t k) {
    const auto v = parse_double(f[k]);
    if (!v) fail_at(file, n, std::string(kNames[k]) + " must be a finite number, got " + quote(f[k]));
    return *v;
  };
  const int64_t frame = integer(0), cls = integer(7);
  integer(1);
  const double flag = number(6), visibility = number(8);
  if (cls != -1 && (cls < 1 || cls > static_cast<int64_t>(num_labels)))
    fail_at(file, n, "class_id must be -1 or in [1, " + std::to_string(num_labels) + "], got " + quote(f[7]));
  if (flag != 0 && flag != 1) fail_at(file, n, "not_ignored must be 0 or 1, got " + quote(f[6]));
  if (!(visibility >= 0 && visibility <= 1)) fail_at(file, n, "visibility must be in [0, 1], got " + quote(f[8]));
  RawObject o;
  o.label = cls == -1 ? -1 : cls - 1;
  o.bbox = {number(2), number(3), number(4), number(5)};
  o.iscrowd = flag == 0 || visibility < min_visibility;
  o.where = "line " + std::to_string(n);
  return {frame, std::move(o)};
}

std::string frame_name(int64_t frame, const std::string& ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(frame));
  return buf + ext;
}

// Every frame of img1/: by number where every image is named by one (000001.jpg is frame 1), else the
// k-th image by name is frame k (CVAT numbers frames so when the images have other names).
std::map<int64_t, RawImage> frames_of(const fs::path& image_dir, std::vector<std::string>& warnings) {
  const auto index = index_images(image_dir);
  const bool numbered = std::all_of(index.by_stem.begin(), index.by_stem.end(), [](const auto& e) {
    return !e.first.empty() && e.first.size() < 19 && e.first.find_first_not_of("0123456789") == std::string::npos;
  });
  std::map<int64_t, RawImage> frames;
  int64_t k = 0;
  for (const auto& [stem, path] : index.by_stem) {
    RawImage& image = frames[numbered ? std::stoll(stem) : ++k];
    image.path = path;
    image.file_name = path.filename().string();
  }
  if (!numbered && !frames.empty())
    warnings.push_back(image_dir.string() + ": frames are not named by number: frame k is the k-th image by name");
  return frames;
}

}  // namespace

RawExport read_mot(const fs::path& root, double min_visibility) {
  RawExport data;
  data.format = "mot";
  const fs::path gt = root / "gt" / "gt.txt";
  data.labels = read_labels(root / "gt" / "labels.txt");
  const SeqInfo info = read_seqinfo(root / "seqinfo.ini");
  const fs::path image_dir = root / info.im_dir;
  std::map<int64_t, RawImage> frames = frames_of(image_dir, data.warnings);
  const std::string text = read_text_file(gt);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    auto [frame, object] = read_row(lines[i], static_cast<int64_t>(i) + 1, gt, data.labels.size(), min_visibility);
    frames[frame].objects.push_back(std::move(object));
  }
  RawSubset subset{"default", gt, {}};
  for (auto& [frame, image] : frames) {
    image.id = frame;
    image.source = gt.string();
    image.width = info.width, image.height = info.height;
    if (image.path.empty()) {
      image.file_name = frame_name(frame, info.im_ext);
      image.path = image_dir / image.file_name;
    }
    subset.images.push_back(std::move(image));
  }
  data.subsets.push_back(std::move(subset));
  return data;
}

}  // namespace detr::datasets::formats
