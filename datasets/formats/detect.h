// The dataset formats a CVAT training workflow can ask for (Onepanel's dump-format, CVAT's export
// menu), which one a folder holds (--dataset_format auto), and loading any of them into the train and
// validation CocoDatasets that load_coco gives for a COCO export.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/coco.h"
#include "datasets/formats/export.h"

namespace detr::datasets::formats {

enum class DatasetFormat {
  coco,
  cvat,
  datumaro,
  labelme,
  mot,
  tfrecord,
  voc,
  yolo,
  ultralytics,
  kitti,
  createml,
  open_images
};

// "coco", "cvat", "datumaro", "labelme", "mot", "tfrecord", "voc", "yolo", "ultralytics", "kitti",
// "createml", "open_images".
const char* format_name(DatasetFormat format);

// A format by our name, Onepanel's dump-format (cvat_coco, cvat_voc, cvat_tfrecord, cvat_yolo,
// cvat_mot, cvat_label_me, cvat, datumaro_project) or CVAT's export name ("COCO 1.0", "YOLO 1.1",
// "PASCAL VOC 1.1", "MOT 1.1", "TFRecord 1.0", "LabelMe 3.0", "CVAT for images 1.1", "Datumaro 1.0",
// "Ultralytics YOLO Detection 1.0" and its Segmentation, Oriented Bounding Boxes and Pose siblings,
// "KITTI 1.0", "Open Images V6 1.0") or
// Datumaro's (yolov8_detection, ...), case-insensitive; nullopt for anything else.
std::optional<DatasetFormat> parse_format_name(std::string_view name);

struct DetectedFormat {
  DatasetFormat format;
  std::string reason;  // one line: what in the folder shows it ("obj.data (YOLO 1.1)")
};

// Which format root holds, from its files (names, and the first bytes of XML and JSON files). Throws
// one line when none matches (saying what was looked for) or several do (listing each with its reason:
// pass --dataset_format).
DetectedFormat detect_format(const std::filesystem::path& root);

// Every format whose files root holds, each with its reason (what detect_format decides from).
std::vector<DetectedFormat> format_candidates(const std::filesystem::path& root);

struct FormatLoadOptions {
  CocoLoadOptions coco;               // skip_bad_images, decode_images, max_image_pixels
  CocoPathOverrides coco_paths;       // COCO only: --train_annotations, ...
  std::filesystem::path extract_dir;  // TFRecord: where images held in records are written
  double mot_min_visibility = 0;      // MOT: boxes less visible become ignore regions
};

// The non-COCO formats' reader output (COCO has its own reader: discover_coco/load_coco).
RawExport read_export(const std::filesystem::path& root, DatasetFormat format, const FormatLoadOptions& options = {});

struct FormatSplits {
  DatasetFormat format = DatasetFormat::coco;
  std::string train_subset;
  CocoDataset train;
  std::optional<std::string> val_subset;
  std::optional<CocoDataset> val;  // absent: the export has no validation subset
};

// The export's train and validation splits (choose_splits' rule for subsets; discover_coco's for
// COCO), each loaded as load_coco loads a COCO split.
FormatSplits load_format(const std::filesystem::path& root,
                         DatasetFormat format,
                         const FormatLoadOptions& options = {});

}  // namespace detr::datasets::formats
