// Fuzz target: the dataset format readers (datasets/formats/) on arbitrary bytes as their annotation
// file. The first byte picks the format; the rest is written where that format keeps its
// annotations, in a scratch export beside the files the layout needs and header-only images:
//   0 Pascal VOC   Annotations/a.xml            (ImageSets/Main/default.txt lists a)
//   1 LabelMe      default/a.xml
//   2 CVAT XML     annotations.xml              (images/a.jpg)
//   3 Datumaro     annotations/default.json
//   4 YOLO 1.1     obj_train_data/a.txt         (obj.data, obj.names, train.txt)
//   5 MOT 1.1      gt/gt.txt                    (gt/labels.txt, img1/000001.jpg)
//   6 TFRecord     default.tfrecord             (label_map.pbtxt; embedded images go to a scratch folder)
//   7 YOLO names   obj.names                    (the label list itself)
//   8 Ultralytics  labels/train/a.txt           (data.yaml, images/train/a.jpg)
//   9 Ultralytics  data.yaml                    (the YAML subset itself)
// So the XML reader, the JSON readers, the text readers, RLE and polygon masks (CVAT XML, Datumaro,
// LabelMe) and the TFRecord framing, CRCs and tf.Example decoding all see hostile bytes.
//
// Expected outcome for bad input: a std::exception. A crash, an abort, a sanitizer report, a hang or
// a huge allocation is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "datasets/formats/detect.h"
#include "fuzz/header_only_images.h"

namespace {

namespace fs = std::filesystem;
namespace f = detr::datasets::formats;

void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz_formats: cannot write %s\n", path.c_str());
    std::abort();  // the harness's own failure, not a finding
  }
}

using detr::fuzz::jpeg_header;

struct Layout {
  f::DatasetFormat format;
  const char* annotation;  // where the input goes, relative to the export's root
};

const Layout kLayouts[] = {
    {f::DatasetFormat::voc, "Annotations/a.xml"},
    {f::DatasetFormat::labelme, "default/a.xml"},
    {f::DatasetFormat::cvat, "annotations.xml"},
    {f::DatasetFormat::datumaro, "annotations/default.json"},
    {f::DatasetFormat::yolo, "obj_train_data/a.txt"},
    {f::DatasetFormat::mot, "gt/gt.txt"},
    {f::DatasetFormat::tfrecord, "default.tfrecord"},
    {f::DatasetFormat::yolo, "obj.names"},
    {f::DatasetFormat::ultralytics, "labels/train/a.txt"},
    {f::DatasetFormat::ultralytics, "data.yaml"},
    {f::DatasetFormat::kitti, "training/label_2/a.txt"},
    {f::DatasetFormat::createml, "train/_annotations.createml.json"},
    {f::DatasetFormat::open_images, "annotations/train-annotations-bbox.csv"},
};

// A fresh export folder per input (a previous input's files must not leak into this one's).
fs::path fresh_export(const fs::path& base) {
  std::error_code ec;
  fs::remove_all(base, ec);
  const std::string image = jpeg_header(64, 48);
  write_file(base / "ImageSets/Main/default.txt", "a\n");
  write_file(base / "JPEGImages/a.jpg", image);
  write_file(base / "default/a.jpg", image);
  write_file(base / "images/a.jpg", image);
  write_file(base / "images/default/a.jpg", image);
  write_file(base / "images/train/a.jpg", image);
  write_file(base / "training/image_2/a.jpg", image);
  write_file(base / "train/a.jpg", image);
  write_file(base / "annotations/class-descriptions.csv", "cat,Cat\ndog,Dog\n");
  write_file(base / "data.yaml", "path: .\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n");
  write_file(base / "obj.data", "classes = 2\nnames = data/obj.names\ntrain = data/train.txt\nbackup = backup/\n");
  write_file(base / "obj.names", "cat\ndog\n");
  write_file(base / "train.txt", "data/obj_train_data/a.jpg\n");
  write_file(base / "obj_train_data/a.jpg", image);
  write_file(base / "gt/labels.txt", "cat\ndog\n");
  write_file(base / "img1/000001.jpg", image);
  write_file(base / "label_map.pbtxt", "item { id: 1 name: 'cat' }\nitem { id: 2 name: 'dog' }\n");
  return base;
}

// The scratch folder, removed when the process ends.
struct Scratch {
  fs::path base = fs::temp_directory_path() / ("detr_fuzz_formats." + std::to_string(::getpid()));
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

const fs::path& scratch_base() {
  static const Scratch s;
  return s.base;
}

// DETR_FUZZ_VERBOSE=1 prints what each input was refused with (for replaying a corpus by hand).
void verbose(const std::exception& e) {
  if (std::getenv("DETR_FUZZ_VERBOSE")) std::fprintf(stderr, "  refused: %s\n", e.what());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const fs::path& base = scratch_base();
  const Layout& layout = kLayouts[data[0] % (sizeof(kLayouts) / sizeof(kLayouts[0]))];
  const fs::path root = fresh_export(base / "export");
  write_file(root / layout.annotation, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  f::FormatLoadOptions options;
  options.extract_dir = base / "extracted";
  // The reader alone, then the whole load (subsets chosen, records converted, images' headers checked).
  try {
    const auto raw = f::read_export(root, layout.format, options);
    if (raw.format.empty()) std::abort();
  } catch (const std::exception& e) {
    verbose(e);
  }
  try {
    const auto splits = f::load_format(root, layout.format, options);
    if (splits.train.images.size() > size) std::abort();  // every image comes from the input's bytes
  } catch (const std::exception& e) {
    verbose(e);
  }
  return 0;
}
