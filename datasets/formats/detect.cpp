#include "datasets/formats/detect.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "datasets/formats/createml.h"
#include "datasets/formats/cvat_xml.h"
#include "datasets/formats/datumaro.h"
#include "datasets/formats/labelme.h"
#include "datasets/formats/mot.h"
#include "datasets/formats/open_images.h"
#include "datasets/formats/text.h"
#include "datasets/formats/tfrecord.h"
#include "datasets/formats/kitti.h"
#include "datasets/formats/ultralytics.h"
#include "datasets/formats/voc.h"
#include "datasets/formats/xml.h"
#include "datasets/formats/yolo.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

const char* format_name(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::coco: return "coco";
    case DatasetFormat::cvat: return "cvat";
    case DatasetFormat::datumaro: return "datumaro";
    case DatasetFormat::labelme: return "labelme";
    case DatasetFormat::mot: return "mot";
    case DatasetFormat::tfrecord: return "tfrecord";
    case DatasetFormat::voc: return "voc";
    case DatasetFormat::yolo: return "yolo";
    case DatasetFormat::ultralytics: return "ultralytics";
    case DatasetFormat::kitti: return "kitti";
    case DatasetFormat::createml: return "createml";
    case DatasetFormat::open_images: return "open_images";
  }
  return "?";
}

std::optional<DatasetFormat> parse_format_name(std::string_view name) {
  std::string n(trim(name));
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  using F = DatasetFormat;
  static const std::pair<const char*, F> kNames[] = {{"coco", F::coco},
                                                     {"cvat_coco", F::coco},
                                                     {"coco 1.0", F::coco},
                                                     {"cvat", F::cvat},
                                                     {"cvat for images 1.1", F::cvat},
                                                     {"cvat_xml", F::cvat},
                                                     {"datumaro", F::datumaro},
                                                     {"datumaro_project", F::datumaro},
                                                     {"datumaro 1.0", F::datumaro},
                                                     {"labelme", F::labelme},
                                                     {"label_me", F::labelme},
                                                     {"cvat_label_me", F::labelme},
                                                     {"labelme 3.0", F::labelme},
                                                     {"mot", F::mot},
                                                     {"cvat_mot", F::mot},
                                                     {"mot 1.1", F::mot},
                                                     {"tfrecord", F::tfrecord},
                                                     {"cvat_tfrecord", F::tfrecord},
                                                     {"tfrecord 1.0", F::tfrecord},
                                                     {"tf_detection_api", F::tfrecord},
                                                     {"voc", F::voc},
                                                     {"cvat_voc", F::voc},
                                                     {"pascal voc 1.1", F::voc},
                                                     {"yolo", F::yolo},
                                                     {"cvat_yolo", F::yolo},
                                                     {"yolo 1.1", F::yolo},
                                                     {"ultralytics", F::ultralytics},
                                                     {"ultralytics_yolo", F::ultralytics},
                                                     {"yolo_ultralytics", F::ultralytics},
                                                     {"yolov8", F::ultralytics},
                                                     {"yolov8_detection", F::ultralytics},
                                                     {"yolov8_segmentation", F::ultralytics},
                                                     {"yolov8_oriented_boxes", F::ultralytics},
                                                     {"yolov8_pose", F::ultralytics},
                                                     {"ultralytics yolo detection 1.0", F::ultralytics},
                                                     {"ultralytics yolo segmentation 1.0", F::ultralytics},
                                                     {"ultralytics yolo oriented bounding boxes 1.0", F::ultralytics},
                                                     {"ultralytics yolo pose 1.0", F::ultralytics},
                                                     {"kitti", F::kitti},
                                                     {"kitti 1.0", F::kitti},
                                                     {"kitti_detection", F::kitti},
                                                     {"cvat_kitti", F::kitti},
                                                     {"createml", F::createml},
                                                     {"roboflow_createml", F::createml},
                                                     {"open_images", F::open_images},
                                                     {"open images v6 1.0", F::open_images},
                                                     {"cvat_open_images", F::open_images}};
  for (const auto& [key, format] : kNames)
    if (n == key) return format;
  return std::nullopt;
}

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

std::vector<fs::path> entries(const fs::path& dir, const std::string& extension, bool dirs = false) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (dirs ? e.is_directory(ec) : (e.is_regular_file(ec) && e.path().extension() == extension))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Whether the file's first 4 MiB hold `needle` (a Datumaro file's "items" key).
bool head_contains(const fs::path& file, const std::string& needle) {
  std::ifstream in(file, std::ios::binary);
  std::string head(4 << 20, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head.find(needle) != std::string::npos;
}

std::optional<std::string> coco_reason(const fs::path& root) {
  for (const auto& f : entries(root / "annotations", ".json"))
    if (f.filename().string().rfind("instances_", 0) == 0) return "annotations/" + f.filename().string() + " (COCO)";
  for (const auto& d : entries(root, "", /*dirs=*/true))
    if (is_file(d / kRoboflowCocoFile))
      return d.filename().string() + "/" + kRoboflowCocoFile + " (COCO, Roboflow's layout)";
  return std::nullopt;
}

std::optional<std::string> datumaro_reason(const fs::path& root) {
  static const char* kCocoTasks[] = {"instances_", "person_keypoints_", "captions_", "image_info_",
                                     "labels_",    "panoptic_",         "stuff_"};
  for (const auto& f : entries(root / "annotations", ".json")) {
    const std::string name = f.filename().string();
    if (std::any_of(std::begin(kCocoTasks), std::end(kCocoTasks), [&](const char* p) { return name.rfind(p, 0) == 0; }))
      continue;
    if (head_contains(f, "\"items\"")) return "annotations/" + name + " with \"items\" (Datumaro)";
  }
  return std::nullopt;
}

// The first XML file under dir (or its subfolders, one level) whose root element is `root_name`.
std::optional<fs::path> xml_with_root(const fs::path& dir,
                                      const std::string& root_name,
                                      bool subfolders,
                                      const std::string& skip_dir = "") {
  for (const auto& f : entries(dir, ".xml"))
    if (peek_xml_root(f) == root_name) return f;
  if (subfolders)
    for (const auto& d : entries(dir, "", /*dirs=*/true))
      if (d.filename() != skip_dir)
        if (auto f = xml_with_root(d, root_name, false)) return f;
  return std::nullopt;
}

std::optional<std::string> labelme_reason(const fs::path& root) {
  auto f = xml_with_root(root, "annotation", /*subfolders=*/true, "Annotations");
  if (!f && is_dir(root / "Annotations"))
    for (const auto& d : entries(root / "Annotations", "", /*dirs=*/true))
      if ((f = xml_with_root(d, "annotation", false))) break;
  if (!f || (head_contains(*f, "<bndbox") && !head_contains(*f, "<polygon")) ||  // VOC-style XML elsewhere
      !voc_roboflow_dirs(root).empty())
    return std::nullopt;
  return f->lexically_relative(root).string() + " with root <annotation> outside VOC's Annotations/ (LabelMe)";
}

// data.yaml beside labels/ (CVAT, Datumaro) or with <subset>/labels/ (Roboflow's train/, valid/).
std::optional<std::string> ultralytics_reason(const fs::path& root) {
  if (!is_file(root / "data.yaml")) return std::nullopt;
  if (is_dir(root / "labels")) return "data.yaml and labels/ (Ultralytics YOLO)";
  for (const auto& d : entries(root, "", /*dirs=*/true))
    if (is_dir(d / "labels")) return "data.yaml and " + d.filename().string() + "/labels/ (Ultralytics YOLO)";
  return std::nullopt;
}

// label_2/ in the root or in a subset folder (KITTI's training/, CVAT's default/).
std::optional<std::string> kitti_reason(const fs::path& root) {
  const auto dirs = kitti_subset_dirs(root);
  if (dirs.empty()) return std::nullopt;
  const std::string where = dirs.front() == root ? "" : dirs.front().filename().string() + "/";
  return where + "label_2/ (KITTI)";
}

std::optional<std::string> tfrecord_reason(const fs::path& root) {
  if (const auto dirs = tfrecord_roboflow_dirs(root); !dirs.empty())
    return dirs.front().filename().string() + "/*.tfrecord (TFRecord, Roboflow's layout)";
  const auto files = entries(root, ".tfrecord");
  if (files.empty()) return std::nullopt;
  return files.front().filename().string() + (is_file(root / "label_map.pbtxt") ? " and label_map.pbtxt" : "") +
         " (TFRecord)";
}

// What a folder without boxes holds instead: Roboflow's multi-label classification CSV.
std::string classification_only(const fs::path& root) {
  for (const auto& d : entries(root, "", /*dirs=*/true))
    if (is_file(d / "_classes.csv"))
      return ". " + d.filename().string() +
             "/_classes.csv is Roboflow's multi-label classification export: image labels without boxes, "
             "which a detector cannot train on";
  return is_file(root / "_classes.csv") ? ". _classes.csv is Roboflow's multi-label classification export: "
                                          "image labels without boxes, which a detector cannot train on"
                                        : "";
}

}  // namespace

std::vector<DetectedFormat> format_candidates(const fs::path& root) {
  std::vector<DetectedFormat> out;
  auto add = [&](DatasetFormat f, std::optional<std::string> why) {
    if (why) out.push_back({f, *why});
  };
  add(DatasetFormat::coco, coco_reason(root));
  add(DatasetFormat::datumaro, datumaro_reason(root));
  if (is_file(root / "obj.data")) add(DatasetFormat::yolo, std::string("obj.data (YOLO 1.1)"));
  add(DatasetFormat::ultralytics, ultralytics_reason(root));
  if (is_dir(root / "Annotations") && is_dir(root / "ImageSets" / "Main"))
    add(DatasetFormat::voc, std::string("Annotations/ and ImageSets/Main/ (Pascal VOC)"));
  if (const auto dirs = voc_roboflow_dirs(root); !dirs.empty())
    add(DatasetFormat::voc, dirs.front().filename().string() + "/*.xml with <bndbox> (Pascal VOC, Roboflow's layout)");
  if (is_file(root / "gt" / "gt.txt")) add(DatasetFormat::mot, std::string("gt/gt.txt (MOT)"));
  add(DatasetFormat::tfrecord, tfrecord_reason(root));
  if (auto f = xml_with_root(root, "annotations", false))
    add(DatasetFormat::cvat, f->filename().string() + " with root <annotations> (CVAT for images)");
  add(DatasetFormat::labelme, labelme_reason(root));
  add(DatasetFormat::kitti, kitti_reason(root));
  if (has_open_images_files(root))
    add(DatasetFormat::open_images, std::string("annotations/*-annotations-bbox.csv or image lists (Open Images)"));
  if (const auto dirs = createml_dirs(root); !dirs.empty())
    add(DatasetFormat::createml,
        (dirs.front() == root ? "" : dirs.front().filename().string() + "/") + kCreateMlFile + " (CreateML)");
  return out;
}

DetectedFormat detect_format(const fs::path& root) {
  if (!is_dir(root)) throw std::runtime_error(root.string() + ": not a directory");
  const auto candidates = format_candidates(root);
  if (candidates.size() == 1) return candidates.front();
  if (candidates.empty())
    throw std::runtime_error(
        root.string() +
        ": no dataset format recognised. Looked for annotations/instances_*.json "
        "(COCO), annotations/<subset>.json with items (Datumaro), obj.data (YOLO), data.yaml + labels/ "
        "(Ultralytics YOLO), Annotations/ + "
        "ImageSets/Main/ (VOC), gt/gt.txt (MOT), *.tfrecord (TFRecord), an XML with root "
        "<annotations> (CVAT) or <annotation> (LabelMe), label_2/ (KITTI), _annotations.createml.json (CreateML), "
        "annotations/*.csv (Open Images)" +
        classification_only(root));
  std::string list;
  for (const auto& c : candidates)
    list += std::string(list.empty() ? "" : "; ") + format_name(c.format) + ": " + c.reason;
  throw std::runtime_error(root.string() + ": holds several dataset formats (" + list +
                           "); choose one with --dataset_format");
}

RawExport read_export(const fs::path& root, DatasetFormat format, const FormatLoadOptions& options) {
  switch (format) {
    case DatasetFormat::cvat: return read_cvat_xml(root);
    case DatasetFormat::datumaro: return read_datumaro(root);
    case DatasetFormat::labelme: return read_labelme(root);
    case DatasetFormat::mot: return read_mot(root, options.mot_min_visibility);
    case DatasetFormat::tfrecord: return read_tfrecord(root, options.extract_dir);
    case DatasetFormat::voc: return read_voc(root);
    case DatasetFormat::yolo: return read_yolo(root);
    case DatasetFormat::ultralytics: return read_ultralytics(root);
    case DatasetFormat::kitti: return read_kitti(root);
    case DatasetFormat::createml: return read_createml(root);
    case DatasetFormat::open_images: return read_open_images(root);
    case DatasetFormat::coco: break;
  }
  throw std::invalid_argument("read_export: COCO exports are read by load_coco");
}

FormatSplits load_format(const fs::path& root, DatasetFormat format, const FormatLoadOptions& options) {
  FormatSplits out;
  out.format = format;
  if (format == DatasetFormat::coco) {
    const CocoLayout layout = discover_coco(root, options.coco_paths);
    out.train_subset = layout.train.subset;
    out.train = load_coco(layout.train, options.coco);
    if (layout.val) {
      out.val_subset = layout.val->subset;
      out.val = load_coco(*layout.val, options.coco);
    }
    return out;
  }
  const RawExport data = read_export(root, format, options);
  const SplitChoice choice = choose_splits(data, root);
  out.train_subset = data.subsets[choice.train].name;
  out.train = to_coco_dataset(data, data.subsets[choice.train], options.coco);
  if (choice.val) {
    out.val_subset = data.subsets[*choice.val].name;
    out.val = to_coco_dataset(data, data.subsets[*choice.val], options.coco);
  }
  return out;
}

}  // namespace detr::datasets::formats
