#include "datasets/formats/open_images.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "datasets/formats/mask_image.h"
#include "datasets/formats/text.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

// One CSV line's fields (RFC 4180 quoting: "a, b" and "" inside quotes).
std::vector<std::string> csv_fields(std::string_view line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"')
      out.back() += '"', ++i;
    else if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted)
      out.emplace_back();
    else if (c != '\r')
      out.back() += c;
  }
  return out;
}

// A CSV file with a header: rows as fields, columns by name.
struct Csv {
  fs::path file;
  std::vector<std::string> header;
  std::vector<std::pair<int64_t, std::vector<std::string>>> rows;  // (line, fields)
  size_t column(const std::string& name) const {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail_at(file, 1, "no column " + quote(name) + " in the header");
    return static_cast<size_t>(it - header.begin());
  }
  const std::string& at(const std::pair<int64_t, std::vector<std::string>>& row, size_t col) const {
    if (col >= row.second.size())
      fail_at(file, row.first, "the line has " + std::to_string(row.second.size()) + " fields, the header more");
    return row.second[col];
  }
};

Csv read_csv(const fs::path& file, bool has_header = true) {
  Csv csv{file, {}, {}};
  const std::string text = read_text_file(file);
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    auto fields = csv_fields(lines[i]);
    if (has_header && csv.header.empty())
      csv.header = std::move(fields);
    else
      csv.rows.emplace_back(static_cast<int64_t>(i) + 1, std::move(fields));
  }
  return csv;
}

std::vector<fs::path> annotation_files(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// "<subset>-annotations-bbox.csv" -> subset: the name without the suffix that made it found.
std::string subset_of(const fs::path& file, const std::string& suffix) {
  const std::string name = file.filename().string();
  return name.substr(0, name.size() - suffix.size());
}

// A subset name that stays one folder under images/ and masks/.
void check_subset(const std::string& subset, const fs::path& file, int64_t line) {
  if (subset.empty() || subset == "." || subset == ".." || subset.find_first_of("/\\") != std::string::npos)
    fail_at(file, line, "subset " + quote(subset) + " is not a folder name");
}

struct Reader {
  fs::path root, annotations;
  std::map<std::string, int64_t> label_of;
  std::vector<std::string> labels;
  std::map<std::string, std::map<std::string, RawImage>> subsets;  // subset -> ImageID -> image
  std::map<std::string, std::string> subset_of_image;

  void read_labels() {
    auto files = annotation_files(annotations, "class-descriptions.csv");
    if (files.empty()) throw std::runtime_error(annotations.string() + ": no class-descriptions.csv (Open Images)");
    // oidv6-class-descriptions.csv (with a header) before class-descriptions.csv (CVAT's, without).
    const fs::path file = files.back().filename() == "class-descriptions.csv" ? files.front() : files.back();
    Csv csv = read_csv(file, /*has_header=*/false);
    if (!csv.rows.empty() && !csv.rows.front().second.empty() && csv.rows.front().second[0] == "LabelName")
      csv.rows.erase(csv.rows.begin());
    for (const auto& row : csv.rows) {
      const std::string& name = csv.at(row, 0);
      if (label_of.emplace(name, static_cast<int64_t>(labels.size())).second) labels.push_back(name);
    }
    check_labels(labels, file);
  }

  RawImage& image(const std::string& subset, const std::string& id, const fs::path& source, int64_t line) {
    check_subset(subset, source, line);
    const auto known = subset_of_image.find(id);
    const std::string& s = known != subset_of_image.end() ? known->second : subset;
    RawImage& im = subsets[s][id];
    if (im.source.empty()) {
      subset_of_image.emplace(id, s);
      im.source = source.string();
      const fs::path dir = root / "images" / s;
      const auto found = find_image_by_stem(dir, id);
      im.path = found ? *found : join_inside(dir, id + ".jpg");
      im.file_name = im.path.filename().string();
    }
    return im;
  }

  void read_image_lists() {
    for (const auto& file : annotation_files(annotations, ".csv")) {
      const std::string name = file.filename().string();
      const bool full = name == "image_ids_and_rotation.csv";
      std::string suffix;
      for (const char* s :
           {"-image_ids_and_rotation.csv", "-images-with-rotation.csv", "-images-with-labels-with-rotation.csv"})
        if (name.size() > std::strlen(s) && name.compare(name.size() - std::strlen(s), std::strlen(s), s) == 0)
          suffix = s;
      if (!full && suffix.empty()) continue;
      const Csv csv = read_csv(file);
      const size_t id = csv.column("ImageID");
      const size_t subset = full ? csv.column("Subset") : 0;
      for (const auto& row : csv.rows)
        image(full ? csv.at(row, subset) : subset_of(file, suffix), csv.at(row, id), file, row.first);
    }
  }

  double fraction(const Csv& csv, const std::pair<int64_t, std::vector<std::string>>& row, const char* name) const {
    const std::string& text = csv.at(row, csv.column(name));
    const auto v = parse_double(text);
    if (!v || *v < 0 || *v > 1)
      fail_at(csv.file, row.first, std::string(name) + " must be in [0, 1], got " + quote(text));
    return *v;
  }

  int64_t label(const Csv& csv, const std::pair<int64_t, std::vector<std::string>>& row) const {
    const std::string& name = csv.at(row, csv.column("LabelName"));
    const auto it = label_of.find(name);
    if (it == label_of.end())
      fail_at(csv.file, row.first, "LabelName " + quote(name) + " is not in the class descriptions");
    return it->second;
  }

  // [xmin, xmax, ymin, ymax] from the columns prefix+XMin, ...
  std::array<double, 4> box(const Csv& csv,
                            const std::pair<int64_t, std::vector<std::string>>& row,
                            const std::string& prefix) const {
    const std::array<double, 4> b = {
        fraction(csv, row, (prefix + "XMin").c_str()), fraction(csv, row, (prefix + "XMax").c_str()),
        fraction(csv, row, (prefix + "YMin").c_str()), fraction(csv, row, (prefix + "YMax").c_str())};
    if (b[1] < b[0] || b[3] < b[2]) fail_at(csv.file, row.first, "the box's max is below its min");
    return b;
  }

  void read_boxes() {
    const std::string suffix = "-annotations-bbox.csv";
    for (const auto& file : annotation_files(annotations, suffix)) {
      const Csv csv = read_csv(file);
      const size_t id = csv.column("ImageID"), group = csv.column("IsGroupOf");
      for (const auto& row : csv.rows) {
        RawObject o;
        o.where = file.filename().string() + " line " + std::to_string(row.first);
        o.label = label(csv, row);
        const auto b = box(csv, row, "");
        o.bbox = {b[0], b[2], b[1] - b[0], b[3] - b[2]};
        o.normalized = true;
        const std::string_view g = trim(csv.at(row, group));
        if (g != "0" && g != "1" && g != "-1")
          fail_at(file, row.first, "IsGroupOf must be 0, 1 or -1 (unknown), got " + quote(g));
        o.iscrowd = g == "1";
        image(subset_of(file, suffix), csv.at(row, id), file, row.first).objects.push_back(std::move(o));
      }
    }
  }

  // A mask PNG: foreground where its first channel is nonzero.
  static Rle read_mask(const fs::path& png, const fs::path& file, int64_t line) {
    try {
      const MaskImage img = read_mask_image(png);
      std::vector<uint8_t> on(static_cast<size_t>(img.height * img.width));
      for (size_t p = 0; p < on.size(); ++p) on[p] = img.pixels[p * img.channels];
      return encode(on.data(), img.height, img.width, MaskLayout::row_major);
    } catch (const std::runtime_error& e) {
      fail_at(file, line, "mask " + png.string() + ": " + e.what());
    }
  }

  // The box object of this label at these coordinates, or a new object.
  static RawObject& owner(RawImage& im, int64_t label, const std::optional<std::array<double, 4>>& b) {
    if (b)
      for (auto& o : im.objects)
        if (o.label == label && !o.mask && o.normalized && std::abs(o.bbox[0] - (*b)[0]) <= 1e-6 &&
            std::abs(o.bbox[0] + o.bbox[2] - (*b)[1]) <= 1e-6 && std::abs(o.bbox[1] - (*b)[2]) <= 1e-6 &&
            std::abs(o.bbox[1] + o.bbox[3] - (*b)[3]) <= 1e-6)
          return o;
    im.objects.emplace_back();
    return im.objects.back();
  }

  void read_masks() {
    const std::string suffix = "-annotations-object-segmentation.csv";
    std::map<fs::path, Rle> decoded;  // a PNG named by several rows is decoded once
    for (const auto& file : annotation_files(annotations, suffix)) {
      const Csv csv = read_csv(file);
      const size_t id = csv.column("ImageID"), path = csv.column("MaskPath"), box_min = csv.column("BoxXMin");
      // The masks' RLE counts together, bounded by the file: rows naming one large PNG are copies.
      std::error_code ec;
      const uint64_t max_counts = 64 * static_cast<uint64_t>(fs::file_size(file, ec)) + (uint64_t{1} << 24);
      uint64_t counts = 0;
      for (const auto& row : csv.rows) {
        RawImage& im = image(subset_of(file, suffix), csv.at(row, id), file, row.first);
        const int64_t l = label(csv, row);
        std::optional<std::array<double, 4>> b;
        if (!csv.at(row, box_min).empty()) b = box(csv, row, "Box");
        const fs::path png = join_inside(root / "masks" / subset_of_image.at(csv.at(row, id)), csv.at(row, path));
        auto known = decoded.find(png);
        if (known == decoded.end()) known = decoded.emplace(png, read_mask(png, file, row.first)).first;
        Rle mask = known->second;
        if ((counts += mask.counts.size()) > max_counts)
          fail_at(file, row.first,
                  "the masks so far take " + std::to_string(counts) + " run counts, more than " +
                      std::to_string(max_counts) + " (64 per byte of the file + 2^24)");
        RawObject& o = owner(im, l, b);
        if (o.where.empty()) {  // a mask without its box: the mask's box, as fractions
          const auto mb = to_bbox(mask);
          const double w = static_cast<double>(mask.width), h = static_cast<double>(mask.height);
          o.where = "line " + std::to_string(row.first) + " of " + file.filename().string();
          o.label = l, o.normalized = true, o.bbox = {mb[0] / w, mb[1] / h, mb[2] / w, mb[3] / h};
        }
        o.mask = std::move(mask);
        o.mask_any_size = true;
      }
    }
  }
};

}  // namespace

bool has_open_images_files(const fs::path& root) {
  const fs::path dir = root / "annotations";
  for (const char* suffix : {"image_ids_and_rotation.csv", "-images-with-rotation.csv", "-annotations-bbox.csv",
                             "-annotations-object-segmentation.csv"})
    if (!annotation_files(dir, suffix).empty()) return true;
  return false;
}

RawExport read_open_images(const fs::path& root) {
  Reader r{root, root / "annotations", {}, {}, {}, {}};
  r.read_labels();
  r.read_image_lists();
  r.read_boxes();
  r.read_masks();
  RawExport data;
  data.format = "open_images";
  data.labels = r.labels;
  for (auto& [name, images] : r.subsets) {
    RawSubset subset{name, root / "annotations", {}};
    for (auto& [id, image] : images) {
      image.id = static_cast<int64_t>(subset.images.size()) + 1;
      subset.images.push_back(std::move(image));
    }
    data.subsets.push_back(std::move(subset));
  }
  if (data.subsets.empty()) throw std::runtime_error(root.string() + ": no Open Images image list or boxes");
  return data;
}

}  // namespace detr::datasets::formats
