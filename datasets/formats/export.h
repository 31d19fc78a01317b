// What every export reader (YOLO, Ultralytics YOLO, Pascal VOC, MOT, TFRecord, LabelMe, CVAT XML, Datumaro) produces
// before images are looked at: labels in the format's order, and per subset the images with their
// objects as the format states them. to_coco_dataset() then turns one subset into the CocoDataset that
// load_coco gives for a COCO export: images found and their headers read (sizes from the header where
// the format has none, checked against it where it has), boxes in absolute xywh, categories 1..N in
// label order. Pure C++17: no tensors.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "datasets/coco_mask.h"

namespace detr::datasets::formats {

struct RawObject {
  int64_t label = -1;            // index into RawExport::labels; -1: unlabelled (skipped, counted)
  std::array<double, 4> bbox{};  // x, y, width, height: pixels, or fractions of the image's
                                 // width/height when `normalized` (YOLO; converted once known)
  bool normalized = false;
  bool iscrowd = false;                       // crowd: VOC `difficult`, MOT ignored, CVAT ellipses, is_crowd
                                              // shapes; CVAT/Datumaro/LabelMe masks (--crowd decides)
  std::optional<double> area;                 // a mask's pixel count; else the polygons' (pycocotools) or w*h
  std::vector<std::vector<double>> polygons;  // [x0, y0, x1, y1, ...] where drawn as polygons (the
                                              // object's mask; the box is their bounding box);
                                              // fractions like the box when `normalized` (Ultralytics)
  std::optional<Rle> mask;                    // a mask the format draws (CVAT, Datumaro, LabelMe, VOC), the size
                                              // of the image as the format declares it; the box is its box
  bool mask_any_size = false;                 // Open Images: the mask PNG's own size, resized to the image's
                                              // (nearest, as OpenCV and Datumaro resize it)
  std::string where;                          // names the object in errors: "line 3", "object 2 (line 40)"
};

struct RawImage {
  int64_t id = 0;                 // the format's frame number, else 1..N in subset order
  std::string file_name;          // as the export names it
  std::filesystem::path path;     // where the reader expects it (checked by to_coco_dataset)
  int64_t width = 0, height = 0;  // as the format declares them; 0: not declared (from the header)
  std::vector<RawObject> objects;
  std::string source;  // the annotation file (and line) for errors
};

struct RawSubset {
  std::string name;              // "default", "train", "Train", "valid", "Validation", ...
  std::filesystem::path source;  // its list or annotation file (or folder)
  std::vector<RawImage> images;
};

struct RawExport {
  std::string format;                 // "yolo", "voc", ...
  std::vector<std::string> labels;    // category i+1 is labels[i]
  std::vector<RawSubset> subsets;     // in the reader's order
  std::vector<std::string> warnings;  // what the reader dropped or decided, one line each
};

// The subsets that train and validate, by the rule COCO subset files follow (discover_coco): train is
// "train"/"training", else "default", else the only subset; val is "validation"/"val"/"valid"
// (case-insensitive). Throws naming the export and listing its subsets when none trains.
struct SplitChoice {
  size_t train = 0;
  std::optional<size_t> val;
};
SplitChoice choose_splits(const RawExport& data, const std::filesystem::path& root);

// One subset as a CocoDataset: every image found on disk (its path; a missing, unreadable, oversized
// or undecodable image, a declared size other than the header's, or a box of negative size is an
// error naming the annotation file, image and field, or with skip_bad_images skipped and counted),
// normalized boxes made absolute, polygon areas as pycocotools computes them, categories 1..N named
// as labels, objects without a label dropped and counted. Fills `summary` as load_coco does.
CocoDataset to_coco_dataset(const RawExport& data, const RawSubset& subset, const CocoLoadOptions& options);

// Checks a label list read from `file`: non-empty names, no duplicates, at most kMaxNumClasses - 1 of
// them. lines[i] (when given) is label i's line in the file, for errors.
void check_labels(const std::vector<std::string>& labels,
                  const std::filesystem::path& file,
                  const std::vector<int64_t>& lines = {});

// Labels numbered in order of first appearance, for formats without a label list (LabelMe, KITTI,
// CreateML).
struct LabelNumbering {
  std::vector<std::string> names;
  std::map<std::string, int64_t> index;
  int64_t of(const std::string& name) {
    const auto [it, fresh] = index.emplace(name, static_cast<int64_t>(names.size()));
    if (fresh) names.push_back(name);
    return it->second;
  }
};

// Puts the labels in name order and renumbers the objects' labels to match (Roboflow's layouts
// without a label list: Roboflow and Datumaro number classes alphabetically).
void sort_labels(RawExport& data);

// A name from an annotation file under `dir`: dir/name when it stays inside dir (no absolute path, no
// "..") and exists, else dir/<basename>; nullopt when neither is a file.
std::optional<std::filesystem::path> find_inside(const std::filesystem::path& dir, const std::string& name);

// dir/name when the name stays inside dir (relative, no ".." climbing out), else dir/<basename>: where
// to look for (or report) a file an export names, never outside dir.
std::filesystem::path join_inside(const std::filesystem::path& dir, const std::string& name);

// Image files of a folder by stem ("000001.jpg" -> "000001"), for formats that name images without
// their extension (VOC, MOT, CVAT video frames). The first by name wins when stems repeat.
struct ImageIndex {
  std::vector<std::pair<std::string, std::filesystem::path>> by_stem;  // sorted by stem
  const std::filesystem::path* find(const std::string& stem) const;
};
ImageIndex index_images(const std::filesystem::path& dir);

// dir/<stem><ext> for the first of image_extensions() (lower case, then upper case) that exists.
std::optional<std::filesystem::path> find_image_by_stem(const std::filesystem::path& dir, const std::string& stem);

// The image extensions exports use, lower case (".jpg", ".jpeg", ".png", ...): the one list that
// is_image_extension, find_image_by_stem and index_images go by.
const std::vector<std::string>& image_extensions();

// Whether the extension is one of image_extensions() (case-insensitive).
bool is_image_extension(const std::filesystem::path& path);

// The object's polygons in pixels: as they are, or scaled by the image's size when `normalized`.
std::vector<std::vector<double>> pixel_polygons(const RawObject& o, int64_t width, int64_t height);

// A mask resized to height x width by nearest neighbour as OpenCV's INTER_NEAREST picks pixels
// (source index floor(i * (1 / (target / source))), in doubles, as its resizeNN computes it).
Rle resize_nearest(const Rle& mask, int64_t height, int64_t width);

// The bounding box [x, y, w, h] of polygon points [x0, y0, x1, y1, ...] (at least one point).
std::array<double, 4> polygon_bbox(const std::vector<double>& points);

}  // namespace detr::datasets::formats
