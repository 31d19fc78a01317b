#include "datasets/synthetic.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <random>
#include <vector>

#include "datasets/coco.h"
#include "datasets/formats/writers.h"

namespace detr::datasets {

namespace fs = std::filesystem;

namespace {

const char* kShapeNames[] = {"box", "ellipse", "triangle"};

cv::Scalar class_colour(int64_t c) {
  static const cv::Scalar colours[] = {{40, 40, 220}, {40, 200, 40}, {220, 80, 40},
                                       {0, 220, 220}, {220, 0, 220}, {220, 220, 0}};
  return colours[(c - 1) % 6];
}

// Draws class c into the box; returns the drawn shape's area in pixels.
double draw(cv::Mat& img, int64_t c, const cv::Rect& r) {
  const auto colour = class_colour(c);
  switch ((c - 1) % 3) {
    case 0: cv::rectangle(img, r, colour, cv::FILLED); return r.area();
    case 1:
      cv::ellipse(img, cv::Point(r.x + r.width / 2, r.y + r.height / 2), cv::Size(r.width / 2, r.height / 2), 0, 0, 360,
                  colour, cv::FILLED);
      return M_PI * r.width * r.height / 4;
    default: {
      std::vector<cv::Point> pts{{r.x + r.width / 2, r.y}, {r.x, r.y + r.height}, {r.x + r.width, r.y + r.height}};
      cv::fillConvexPoly(img, pts, colour);
      return r.area() / 2.0;
    }
  }
}

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// A box with sides of 1/6..1/2 of the image's; with no_overlap, one at least 2 pixels clear of
// `placed` (50 tries), else none.
std::optional<cv::Rect> place_box(std::mt19937_64& rng,
                                  const SyntheticExportOptions& o,
                                  const std::vector<cv::Rect>& placed) {
  for (int attempt = 0; attempt < (o.no_overlap ? 50 : 1); ++attempt) {
    const int64_t bw = uniform(rng, o.width / 6, o.width / 2), bh = uniform(rng, o.height / 6, o.height / 2);
    const cv::Rect r(static_cast<int>(uniform(rng, 0, o.width - bw)), static_cast<int>(uniform(rng, 0, o.height - bh)),
                     static_cast<int>(bw), static_cast<int>(bh));
    bool free = true;
    if (o.no_overlap)
      for (const auto& p : placed)
        if ((r & cv::Rect(p.x - 2, p.y - 2, p.width + 4, p.height + 4)).area() > 0) free = false;
    if (free) return r;
  }
  return std::nullopt;
}

}  // namespace

void write_synthetic_cvat_export(const fs::path& root, const SyntheticExportOptions& o) {
  if (o.num_images < 1 || o.width < 32 || o.height < 32 || o.num_classes < 1)
    throw std::invalid_argument("synthetic export: need >= 1 image of at least 32x32 and >= 1 class");
  if (o.subset.empty() || o.subset.find_first_of("/\\") != std::string::npos || o.subset[0] == '.')
    throw std::invalid_argument("synthetic export: subset '" + o.subset + "' is not a plain name");
  const fs::path image_dir = o.subset == "default" ? root / "images" : root / "images" / o.subset;
  fs::create_directories(image_dir);
  fs::create_directories(root / "annotations");
  std::mt19937_64 rng(o.seed);

  nlohmann::json images = nlohmann::json::array(), annotations = nlohmann::json::array(),
                 categories = nlohmann::json::array();
  for (int64_t c = 1; c <= o.num_classes; ++c)
    categories.push_back({{"id", c},
                          {"name", std::string(kShapeNames[(c - 1) % 3]) + (c > 3 ? std::to_string(c) : "")},
                          {"supercategory", ""}});
  int64_t frame = 0, ann_id = 1;
  for (int64_t n = 0; n < o.num_images; ++n) {
    if (o.cvat_quirks && n % 5 == 3) frame += 1;  // CVAT 1.0 drops unannotated frames: id gaps
    const int64_t id = frame++;
    cv::Mat img(static_cast<int>(o.height), static_cast<int>(o.width), CV_8UC3);
    cv::randu(img, cv::Scalar(90, 90, 90), cv::Scalar(150, 150, 150));
    const bool empty = o.cvat_quirks && n == 1;
    const int64_t count = empty ? 0 : uniform(rng, 1, o.max_objects);
    std::vector<cv::Rect> placed;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t c = uniform(rng, 1, o.num_classes);
      const auto box = place_box(rng, o, placed);
      if (!box) continue;  // no room left: fewer objects in this image
      const cv::Rect r = *box;
      placed.push_back(r);
      const double area = draw(img, c, r);
      annotations.push_back({{"id", ann_id++},
                             {"image_id", id},
                             {"category_id", c},
                             {"segmentation", nlohmann::json::array()},
                             {"area", area},
                             {"bbox", {r.x, r.y, r.width, r.height}},
                             {"iscrowd", 0}});
    }
    if (o.cvat_quirks && n == 2) {  // a crowd region as CVAT writes masks: uncompressed RLE
      const int64_t h = o.height, w = o.width;
      annotations.push_back({{"id", ann_id++},
                             {"image_id", id},
                             {"category_id", 1},
                             {"segmentation", {{"counts", {h * 2, h * 3, h * (w - 5)}}, {"size", {h, w}}}},
                             {"area", h * 3},
                             {"bbox", {2, 0, 3, h}},
                             {"iscrowd", 1}});
    }
    const auto file = std::to_string(id) + ".jpg";
    if (!cv::imwrite((image_dir / file).string(), img))
      throw std::runtime_error((image_dir / file).string() + ": cannot write");
    images.push_back({{"id", id},
                      {"width", o.width},
                      {"height", o.height},
                      {"file_name", file},
                      {"license", 0},
                      {"flickr_url", ""},
                      {"coco_url", ""},
                      {"date_captured", 0}});
  }
  nlohmann::json doc{
      {"licenses", {{{"name", ""}, {"id", 0}, {"url", ""}}}},
      {"info",
       {{"contributor", ""}, {"date_created", ""}, {"description", ""}, {"url", ""}, {"version", ""}, {"year", ""}}},
      {"categories", categories},
      {"images", images},
      {"annotations", annotations}};
  const auto path = root / "annotations" / ("instances_" + o.subset + ".json");
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << doc.dump();
    if (!out) throw std::runtime_error(path.string() + ": cannot write");
  }
  fs::rename(tmp, path);
}

void write_synthetic_export(const fs::path& root,
                            const SyntheticExportOptions& options,
                            formats::DatasetFormat format) {
  if (format == formats::DatasetFormat::coco) return write_synthetic_cvat_export(root, options);
  const fs::path tmp = fs::temp_directory_path() / ("detr_make_dataset_" + std::to_string(std::random_device{}()));
  struct Remove {
    fs::path dir;
    ~Remove() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove{tmp};
  write_synthetic_cvat_export(tmp, options);
  const auto coco = load_coco_annotations(tmp / "annotations" / ("instances_" + options.subset + ".json"));
  const fs::path images = options.subset == "default" ? tmp / "images" : tmp / "images" / options.subset;
  formats::WriteOptions link;
  link.link_images = true;
  formats::write_export(formats::raw_export_from_coco(coco, options.subset, images), format, root, link);
}

}  // namespace detr::datasets
