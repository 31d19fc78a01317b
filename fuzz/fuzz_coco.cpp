// Fuzz target: the COCO annotation reader on arbitrary bytes as the annotation file, both as training
// uses it (datasets::load_coco) and as evaluation does (datasets::parse_coco_annotations, no image
// lookup), segmentations included (polygons and RLE, checked by the mask codec at load), then what
// training and evaluation do with a dataset that loads (summary, per-image box conversion, the
// --val_split split, each object's mask by object_rle).
//
// load_coco reads a file: each input is written to one scratch file per process
// (/tmp/detr_fuzz_coco.<pid>/instances.json), next to an image folder holding a few header-only
// images (a.png 64x48, b.jpg 32x24, c.gif 10x10 in sub/, huge.png 100000x100000, junk.jpg
// undecodable) so that file_name resolution and the header checks run too. Nothing is decoded.
//
// Expected outcome for bad input: a std::exception. A crash, an abort, a sanitizer report, a hang
// or a huge allocation is a finding.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "datasets/coco.h"
#include "fuzz/header_only_images.h"

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz_coco: cannot write %s\n", path.c_str());
    std::abort();  // the harness's own failure, not a finding: make it loud
  }
}

using detr::fuzz::jpeg_header;
using detr::fuzz::png_header;

struct Scratch {
  fs::path dir, annotations, images;
  Scratch() {
    dir = fs::temp_directory_path() / ("detr_fuzz_coco." + std::to_string(::getpid()));
    annotations = dir / "instances.json";
    images = dir / "images";
    fs::create_directories(images / "sub");
    write_file(images / "a.png", png_header(64, 48));
    write_file(images / "b.jpg", jpeg_header(32, 24));
    write_file(images / "sub" / "c.gif", std::string("GIF89a\x0a\x00\x0a\x00\x00\x00\x00", 13));
    write_file(images / "huge.png", png_header(100000, 100000));
    write_file(images / "junk.jpg", "not an image");
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Scratch& scratch() {
  static const Scratch s;
  return s;
}

template <typename F>
void expect_only_exceptions(F&& f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

// Rasterising is linear in a polygon's upsampled boundary (up to 2^26 points each, by the codec's
// limit), so a few kilobytes of far-out coordinates could take minutes: masks are made only for
// polygons near small images, which is where their bugs would be.
bool cheap_mask(const detr::datasets::CocoObject& o, int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > 1024 || height > 1024) return false;
  size_t numbers = 0;
  for (const auto& p : o.segmentation.polygons) {
    numbers += p.size();
    for (double v : p)
      if (!(std::abs(v) <= 4096)) return false;
  }
  return numbers <= 4096 && std::abs(o.bbox[0]) + std::abs(o.bbox[2]) <= 4096 &&
         std::abs(o.bbox[1]) + std::abs(o.bbox[3]) <= 4096;
}

void use_masks(const detr::datasets::CocoImageRecord& rec, std::string& sink) {
  namespace ds = detr::datasets;
  for (const auto& o : rec.objects) {
    if (!cheap_mask(o, rec.width, rec.height)) continue;
    expect_only_exceptions([&] {
      const auto rle = ds::object_rle(o, rec.height, rec.width);
      sink += std::to_string(ds::area(rle)) + std::to_string(ds::to_bbox(rle)[2]);
    });
  }
}

void use(const detr::datasets::CocoDataset& data) {
  namespace ds = detr::datasets;
  std::string sink = ds::format_summary(data, "train");
  for (const auto& rec : data.images) {
    const auto clean = ds::convert_objects(rec.objects, rec.width, rec.height);
    sink += std::to_string(clean.labels.size());
    use_masks(rec, sink);
  }
  if (data.images.size() >= 2)
    expect_only_exceptions([&] {
      const auto [train, val] = ds::split_dataset(data, 0.3, 42);
      sink += ds::format_summary(train, "train") + ds::format_summary(val, "val");
    });
  if (sink.empty()) std::abort();  // keeps the work observable
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ds = detr::datasets;
  const Scratch& s = scratch();
  write_file(s.annotations, std::string(reinterpret_cast<const char*>(data), size));
  const ds::CocoSplit split{s.annotations, s.images, "train"};
  // Strict (the default: the first bad image is an error), then --skip_bad_images.
  for (const bool skip : {false, true}) {
    ds::CocoLoadOptions options;
    options.skip_bad_images = skip;
    try {
      use(ds::load_coco(split, options));
    } catch (const std::exception&) {
    }
  }
  try {
    use(ds::parse_coco_annotations(std::string_view(reinterpret_cast<const char*>(data), size), "instances.json"));
  } catch (const std::exception&) {
  }
  return 0;
}
