// The CVAT dump formats besides COCO (datasets/formats): the XML reader, the TFRecord framing and
// protobuf reader, each format's reader on exports written by the library's writers as CVAT writes them
// (datasets/formats/writers.h; round trips: the same annotations written as COCO load equal), every malformed-file
// rule, format detection, and the real exports of ../shared/data/real-exports when present (FormatsOptionalFixtures).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "datasets/coco_mask.h"
#include "datasets/cvat_policy.h"
#include "datasets/formats/createml.h"
#include "datasets/formats/cvat_xml.h"
#include "datasets/formats/datumaro.h"
#include "datasets/formats/detect.h"
#include "datasets/formats/export.h"
#include "datasets/formats/kitti.h"
#include "datasets/formats/labelme.h"
#include "datasets/formats/mask_image.h"
#include "datasets/formats/mot.h"
#include "datasets/formats/open_images.h"
#include "datasets/formats/text.h"
#include "datasets/formats/tfrecord.h"
#include "datasets/formats/ultralytics.h"
#include "datasets/formats/voc.h"
#include "datasets/formats/writers.h"
#include "datasets/formats/xml.h"
#include "datasets/formats/yolo.h"
#include "datasets/synthetic.h"
#include "tests/fixtures.h"
#include "tests/support.h"
#include "util/crc32c.h"

namespace fs = std::filesystem;
namespace dd = detr::datasets;
using namespace detr::datasets::formats;
// Protobuf wire encoding by hand, to craft the records protobuf itself would not write (malformed,
// hostile, unpacked lists) for the reader tests.
namespace protobuf {

std::string varint(uint64_t v) {
  std::string out;
  do {
    out += static_cast<char>((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return out;
}

std::string len_field(int field, const std::string& bytes) {
  return varint(static_cast<uint64_t>(field) << 3 | 2) + varint(bytes.size()) + bytes;
}

std::string bytes_feature(const std::vector<std::string>& values) {
  std::string list;
  for (const auto& v : values) list += len_field(1, v);
  return len_field(1, list);
}

std::string float_feature(const std::vector<float>& values) {
  std::string packed(values.size() * 4, '\0');
  if (!values.empty()) std::memcpy(packed.data(), values.data(), packed.size());
  return len_field(2, len_field(1, packed));
}

std::string int_feature(const std::vector<int64_t>& values) {
  std::string packed;
  for (auto v : values) packed += varint(static_cast<uint64_t>(v));
  return len_field(3, len_field(1, packed));
}

std::string example(const std::vector<std::pair<std::string, std::string>>& features) {
  std::string map;
  for (const auto& [k, f] : features) map += len_field(1, len_field(1, k) + len_field(2, f));
  return len_field(1, map);
}

std::string framed(const std::string& data) {
  auto little = [](uint64_t v, int n) {
    std::string s(static_cast<size_t>(n), '\0');
    for (int i = 0; i < n; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
    return s;
  };
  const std::string len = little(data.size(), 8);
  return len + little(detr::util::masked_crc32c(len.data(), 8), 4) + data +
         little(detr::util::masked_crc32c(data.data(), data.size()), 4);
}

}  // namespace protobuf
using namespace protobuf;
using nlohmann::json;

namespace {

// The shared data beside the checkout ($DETR_SHARED_DATA, else the fixtures folder's sibling data/,
// else ../shared/data): real exports collected from CVAT's and Datumaro's repositories.
fs::path shared_data_dir() {
  if (const char* env = std::getenv("DETR_SHARED_DATA")) return env;
  return detr::testing::fixtures_dir().parent_path() / "data";
}
fs::path real_exports() { return shared_data_dir() / "real-exports"; }

#define REQUIRE_REAL_EXPORTS()                                                                        \
  do {                                                                                                \
    if (!fs::is_directory(real_exports()))                                                            \
      GTEST_SKIP() << "optional data not found: " << real_exports()                                   \
                   << " (real CVAT/Datumaro exports; set DETR_SHARED_DATA to the folder holding it)"; \
  } while (0)

using detr::testing::error_of;
using detr::testing::expect_error;
using detr::testing::read_file;
using detr::testing::write_file;

fs::path temp_dir(const std::string& name) { return detr::testing::scratch_dir("detr_formats_", name); }

// ---------------------------------------------------------------------------------------------
// A small synthetic export, written in every format as CVAT writes it.

// crowd: an ignore region (is_crowd masks in CVAT, Datumaro, LabelMe; VOC difficult; MOT ignored);
// mask: an instance drawn as a mask (a box-only format writes its box).
enum class Kind { box, polygon, crowd, mask };

struct SObject {
  int label = 0;
  std::array<double, 4> box{};  // integers, even sizes: exact in YOLO's %.6f and TFRecord's float32
  Kind kind = Kind::box;
};
struct SImage {
  std::string stem;
  int width = 64, height = 32;
  std::vector<SObject> objects;
  std::string file() const { return stem + ".png"; }
};
struct SSubset {
  std::string name;
  std::vector<SImage> images;
};
struct Spec {
  std::vector<std::string> labels{"cat", "dog", "salt & pepper"};
  std::vector<SSubset> subsets;
};

// Train (5 images, the first showing every label in order, one empty) and Validation (2 images);
// sizes of powers of two. `kinds` are the object kinds the format can hold.
Spec make_spec(std::vector<Kind> kinds, std::vector<std::string> subsets = {"Train", "Validation"}) {
  Spec spec;
  static const int kSizes[][2] = {{64, 32}, {32, 64}, {64, 64}};
  int n = 0;
  for (size_t s = 0; s < subsets.size(); ++s) {
    SSubset subset{subsets[s], {}};
    for (int i = 0; i < (s == 0 ? 5 : 2); ++i, ++n) {
      SImage im{
          (s == 0 && subsets.size() == 1 ? "" : "img") + std::string(n < 9 ? "00000" : "0000") + std::to_string(n + 1),
          kSizes[n % 3][0],
          kSizes[n % 3][1],
          {}};
      const int count = (s == 0 && i == 1) ? 0 : (s == 0 && i == 0) ? 3 : 1 + n % 3;
      for (int k = 0; k < count; ++k) {
        SObject o;
        o.label = (s == 0 && i == 0) ? k : (n + k) % 3;
        o.box = {double(2 + 4 * k), double(1 + 3 * k), double(6 + 2 * (n % 4)), double(4 + 2 * ((n + k) % 3))};
        o.kind = kinds[(n + k) % kinds.size()];
        if (s == 0 && i == 0) o.kind = Kind::box;
        im.objects.push_back(o);
      }
      subset.images.push_back(im);
    }
    spec.subsets.push_back(subset);
  }
  return spec;
}

std::string png_bytes(const SImage& im) {
  cv::Mat img(im.height, im.width, CV_8UC3, cv::Scalar(40 + im.width, 90, 120 + im.height));
  std::vector<uchar> out;
  cv::imencode(".png", img, out);
  return {out.begin(), out.end()};
}
void write_image(const fs::path& path, const SImage& im) { write_file(path, png_bytes(im)); }

std::vector<double> triangle(const std::array<double, 4>& b) {  // bounding box b
  return {b[0], b[1] + b[3], b[0] + b[2] / 2, b[1], b[0] + b[2], b[1] + b[3]};
}

// A mask whose tight box is b: the box's border and every fifth pixel inside, so it has holes.
dd::Rle patterned_mask(const std::array<double, 4>& b, int64_t height, int64_t width) {
  std::vector<uint8_t> m(static_cast<size_t>(height * width), 0);
  const auto x0 = static_cast<int64_t>(b[0]), y0 = static_cast<int64_t>(b[1]);
  const auto x1 = x0 + static_cast<int64_t>(b[2]), y1 = y0 + static_cast<int64_t>(b[3]);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x)
      m[y * width + x] = y == y0 || y == y1 - 1 || x == x0 || x == x1 - 1 || (x - x0 + 2 * (y - y0)) % 5 == 0;
  return dd::encode(m.data(), height, width, dd::MaskLayout::row_major);
}

// The spec as the readers' records: polygons as triangles in their box, masks patterned in it.
RawExport to_raw(const Spec& spec) {
  RawExport raw;
  raw.labels = spec.labels;
  for (const auto& s : spec.subsets) {
    RawSubset subset{s.name, {}, {}};
    for (const auto& im : s.images) {
      RawImage image;
      image.id = static_cast<int64_t>(subset.images.size()) + 1;
      image.file_name = im.file();
      image.width = im.width, image.height = im.height;
      for (const auto& o : im.objects) {
        RawObject object;
        object.label = o.label;
        object.bbox = o.box;
        object.iscrowd = o.kind == Kind::crowd;
        if (o.kind == Kind::polygon) object.polygons.push_back(triangle(o.box));
        if (o.kind == Kind::mask) {
          object.mask = patterned_mask(o.box, im.height, im.width);
          object.area = static_cast<double>(dd::area(*object.mask));
        }
        image.objects.push_back(object);
      }
      subset.images.push_back(image);
    }
    raw.subsets.push_back(subset);
  }
  return raw;
}

// Each format as the library's writers (datasets/formats/writers.h) write it.
void write_as(DatasetFormat format, const Spec& spec, const fs::path& root, const WriteOptions& options = {}) {
  write_export(to_raw(spec), format, root, options);
}
void write_coco(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::coco, spec, root); }
void write_yolo(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::yolo, spec, root); }
void write_ultralytics(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::ultralytics, spec, root); }
void write_voc(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::voc, spec, root); }
void write_mot(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::mot, spec, root); }
void write_labelme(const Spec& spec, const fs::path& root) { write_as(DatasetFormat::labelme, spec, root); }
void write_tfrecord_with(const Spec& spec, const fs::path& root, bool embed) {
  WriteOptions options;
  options.embed_images = embed;
  write_as(DatasetFormat::tfrecord, spec, root, options);
}
void write_tfrecord(const Spec& spec, const fs::path& root) { write_tfrecord_with(spec, root, true); }

std::string label_map_text(const Spec& spec) {
  std::string out;
  for (size_t i = 0; i < spec.labels.size(); ++i)
    out += "item {\n\tid: " + std::to_string(i + 1) + "\n\tname: '" + spec.labels[i] + "'\n}\n\n";
  return out;
}

// Replaces every `from` in the file by `to`.
void replace_all(const fs::path& file, const std::string& from, const std::string& to) {
  std::string text = read_file(file);
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  write_file(file, text);
}

// CVAT for images with what real dumps hold besides shapes, which the reader skips: a comment, a
// box attribute, a polyline in every image.
void write_cvat(const Spec& spec, const fs::path& root) {
  write_as(DatasetFormat::cvat, spec, root);
  const fs::path file = root / "annotations.xml";
  replace_all(file, "</meta>\n", "</meta>\n<!-- a comment -->\n");
  replace_all(file, " z_order=\"0\">\n    </box>\n",
              " z_order=\"0\">\n      <attribute name=\"a\">x</attribute>\n    </box>\n");
  replace_all(file, "  </image>\n", "    <polyline label=\"cat\" points=\"1,2;3,4\" z_order=\"0\"/>\n  </image>\n");
}

// Datumaro with a points annotation in every item, which the reader skips.
void write_datumaro(const Spec& spec, const fs::path& root) {
  write_as(DatasetFormat::datumaro, spec, root);
  for (const auto& s : spec.subsets) {
    const fs::path file = root / "annotations" / (s.name + ".json");
    json doc = json::parse(read_file(file));
    for (auto& item : doc["items"])
      item["annotations"].push_back(
          {{"id", item["annotations"].size()}, {"type", "points"}, {"label_id", 0}, {"points", {1, 2}}});
    write_file(file, doc.dump());
  }
}

// ---------------------------------------------------------------------------------------------

// How many of the objects' mask pixels differ between two loads (object_rle: polygons, RLE, or box).
struct MaskDiff {
  int64_t objects = 0, pixels = 0, differ = 0;
};
void count_mask_diff(const dd::CocoObject& a, const dd::CocoObject& b, int64_t h, int64_t w, MaskDiff& d) {
  const auto ma = dd::decode(dd::object_rle(a, h, w), dd::MaskLayout::row_major);
  const auto mb = dd::decode(dd::object_rle(b, h, w), dd::MaskLayout::row_major);
  ++d.objects, d.pixels += h * w;
  for (size_t p = 0; p < ma.size(); ++p) d.differ += ma[p] != mb[p];
}

// The two loads agree: categories, images (by file name stem, in order), sizes, objects (their areas
// unless `areas` is false: formats without areas give w*h; their masks pixel for pixel when `masks`).
void expect_equal(const dd::CocoDataset& coco, const dd::CocoDataset& other, bool areas = true, bool masks = false) {
  MaskDiff diff;
  ASSERT_EQ(coco.categories.size(), other.categories.size());
  for (size_t i = 0; i < coco.categories.size(); ++i) {
    EXPECT_EQ(coco.categories[i].id, other.categories[i].id);
    EXPECT_EQ(coco.categories[i].name, other.categories[i].name);
  }
  ASSERT_EQ(coco.images.size(), other.images.size());
  for (size_t i = 0; i < coco.images.size(); ++i) {
    const auto &a = coco.images[i], &b = other.images[i];
    SCOPED_TRACE(a.file_name);
    EXPECT_EQ(fs::path(a.file_name).stem(), fs::path(b.file_name).stem());
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.height, b.height);
    EXPECT_TRUE(fs::is_regular_file(b.path)) << b.path;
    ASSERT_EQ(a.objects.size(), b.objects.size());
    for (size_t k = 0; k < a.objects.size(); ++k) {
      EXPECT_EQ(a.objects[k].category_id, b.objects[k].category_id) << k;
      EXPECT_EQ(a.objects[k].iscrowd, b.objects[k].iscrowd) << k;
      if (areas) {
        EXPECT_NEAR(a.objects[k].area, b.objects[k].area, 1e-6) << k;
      }
      for (int j = 0; j < 4; ++j) EXPECT_NEAR(a.objects[k].bbox[j], b.objects[k].bbox[j], 1e-6) << k << " " << j;
      if (masks) count_mask_diff(a.objects[k], b.objects[k], a.height, a.width, diff);
    }
  }
  if (masks) {
    std::printf("masks: %lld objects, %lld pixels, %lld differ\n", static_cast<long long>(diff.objects),
                static_cast<long long>(diff.pixels), static_cast<long long>(diff.differ));
    EXPECT_EQ(diff.differ, 0);
  }
  if (masks) {  // counted at load, before the crowd policy that the mask round trips apply
    EXPECT_EQ(coco.summary.boxes + coco.summary.crowd_dropped, other.summary.boxes + other.summary.crowd_dropped);
    return;
  }
  EXPECT_EQ(coco.summary.boxes, other.summary.boxes);
  EXPECT_EQ(coco.summary.crowd_dropped, other.summary.crowd_dropped);
  EXPECT_EQ(coco.summary.images_without_boxes, other.summary.images_without_boxes);
}

// Writes spec as COCO and with `write`, loads both, compares train and validation.
void round_trip(const std::string& name,
                const Spec& spec,
                DatasetFormat format,
                const std::function<void(const Spec&, const fs::path&)>& write,
                bool masks = false,
                bool areas = true,
                FormatLoadOptions options = {}) {
  const fs::path dir = temp_dir("rt_" + name);
  write_coco(spec, dir / "coco");
  write(spec, dir / name);
  EXPECT_EQ(detect_format(dir / "coco").format, DatasetFormat::coco);
  const auto detected = detect_format(dir / name);
  EXPECT_EQ(detected.format, format) << detected.reason;
  auto coco = load_format(dir / "coco", DatasetFormat::coco);
  if (options.extract_dir.empty()) options.extract_dir = dir / "extracted";
  auto other = load_format(dir / name, format, options);
  if (masks) {  // CVAT's formats hold masks as crowd RLEs: compare them as objects on both sides
    for (auto* d : {&coco.train, &other.train}) dd::apply_policy(*d, {dd::CrowdPolicy::kObjects});
    if (coco.val && other.val)
      for (auto* d : {&*coco.val, &*other.val}) dd::apply_policy(*d, {dd::CrowdPolicy::kObjects});
  }
  expect_equal(coco.train, other.train, areas, masks);
  ASSERT_EQ(coco.val.has_value(), other.val.has_value());
  if (coco.val) expect_equal(*coco.val, *other.val, areas, masks);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips: the same annotations as COCO and as the format load equal.

TEST(FormatsRoundTrip, Yolo) { round_trip("yolo", make_spec({Kind::box}), DatasetFormat::yolo, write_yolo); }

TEST(FormatsRoundTrip, UltralyticsBoxesAndPolygons) {
  round_trip("ultralytics", make_spec({Kind::box, Kind::polygon}), DatasetFormat::ultralytics, write_ultralytics,
             /*masks=*/true);
}

TEST(FormatsRoundTrip, VocWithDifficultAsIgnoreRegions) {
  round_trip("voc", make_spec({Kind::box, Kind::crowd}), DatasetFormat::voc, write_voc);
}

TEST(FormatsRoundTrip, MotWithIgnoredRows) {
  round_trip("mot", make_spec({Kind::box, Kind::crowd, Kind::box}, {"default"}), DatasetFormat::mot, write_mot);
}

TEST(FormatsRoundTrip, TfRecordWithEmbeddedImages) {
  round_trip("tfrecord", make_spec({Kind::box}), DatasetFormat::tfrecord, write_tfrecord);
}

TEST(FormatsRoundTrip, TfRecordWithImagesBeside) {
  round_trip("tfrecord_files", make_spec({Kind::box}), DatasetFormat::tfrecord,
             [](const Spec& spec, const fs::path& root) { write_tfrecord_with(spec, root, /*embed=*/false); });
}

// Masks and polygons reach --masks: every object's mask equals the COCO export's pixel for pixel.
TEST(FormatsRoundTrip, LabelMeBoxesPolygonsMasks) {
  round_trip("labelme", make_spec({Kind::box, Kind::polygon, Kind::mask, Kind::crowd}), DatasetFormat::labelme,
             write_labelme, /*masks=*/true);
}

TEST(FormatsRoundTrip, CvatXmlBoxesPolygonsMasks) {
  round_trip("cvat", make_spec({Kind::polygon, Kind::mask, Kind::box, Kind::crowd}), DatasetFormat::cvat, write_cvat,
             /*masks=*/true);
}

TEST(FormatsRoundTrip, DatumaroBoxesPolygonsMasks) {
  round_trip("datumaro", make_spec({Kind::crowd, Kind::polygon, Kind::mask, Kind::box}), DatasetFormat::datumaro,
             write_datumaro, /*masks=*/true);
}

TEST(FormatsRoundTrip, Kitti) {
  Spec spec = make_spec({Kind::box, Kind::mask});
  spec.labels = {"cat", "dog", "salt_and_pepper"};  // KITTI's lines are space-separated
  round_trip(
      "kitti", spec, DatasetFormat::kitti,
      [](const Spec& s, const fs::path& root) { write_as(DatasetFormat::kitti, s, root); }, /*masks=*/false,
      /*areas=*/false);  // a mask's box, with the box's area
  expect_error([&] { write_as(DatasetFormat::kitti, make_spec({Kind::box}), temp_dir("kitti_space")); },
               {"label 'salt & pepper': KITTI's space-separated lines cannot hold it"});
}

// KITTI's DontCare: ignore regions of a category of their own; images without a label file are
// images without objects; the root itself may hold label_2/.
TEST(FormatsDecisions, KittiDontCareAndImagesWithoutLabels) {
  const auto dir = temp_dir("kitti_dontcare");
  write_file(dir / "label_2" / "a.txt",
             "Car 0.00 0 -10 1.00 2.00 11.00 12.00 -1 -1 -1 -1000 -1000 -1000 -10\n"
             "DontCare -1 -1 -10 20.00 2.00 30.00 12.00 -1 -1 -1 -1000 -1000 -1000 -10 0.5\n\n");
  SImage im{"a", 64, 32, {}};
  write_image(dir / "image_2" / "a.png", im);
  write_image(dir / "image_2" / "b.png", im);
  EXPECT_EQ(detect_format(dir).reason, "label_2/ (KITTI)");
  const auto s = load_format(dir, DatasetFormat::kitti);
  EXPECT_EQ(s.train_subset, "default");
  ASSERT_EQ(s.train.categories.size(), 2u);
  EXPECT_EQ(s.train.categories[1].name, "DontCare");
  ASSERT_EQ(s.train.images.size(), 2u);
  ASSERT_EQ(s.train.images[0].objects.size(), 2u);
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{1, 2, 10, 10}));
  EXPECT_TRUE(s.train.images[0].objects[1].iscrowd);
  EXPECT_TRUE(s.train.images[1].objects.empty());
  EXPECT_EQ(s.train.summary.crowd_dropped, 1);
}

TEST(FormatsRoundTrip, CreateMl) {
  round_trip("createml", make_spec({Kind::box}), DatasetFormat::createml,
             [](const Spec& s, const fs::path& root) { write_as(DatasetFormat::createml, s, root); });
}

// Roboflow's layouts of COCO, Pascal VOC and TFRecord: subset folders holding the annotations beside
// the images (made here by moving the library writers' CVAT layout into them) load as COCO does.
TEST(FormatsRoundTrip, RoboflowLayouts) {
  const auto dir = temp_dir("roboflow");
  const Spec spec = make_spec({Kind::box, Kind::crowd});
  write_coco(spec, dir / "coco");
  const auto coco = load_format(dir / "coco", DatasetFormat::coco);
  const fs::path cvat = dir / "cvat";
  write_coco(spec, cvat / "coco");
  write_voc(spec, cvat / "voc");
  write_tfrecord_with(spec, cvat / "tfrecord", /*embed=*/false);
  for (const auto& s : spec.subsets) {
    fs::create_directories(dir / "rf_coco" / s.name);
    fs::copy(cvat / "coco" / "annotations" / ("instances_" + s.name + ".json"),
             dir / "rf_coco" / s.name / "_annotations.coco.json");
    fs::create_directories(dir / "rf_voc" / s.name);
    fs::create_directories(dir / "rf_tfrecord" / s.name);
    fs::copy(cvat / "tfrecord" / (s.name + ".tfrecord"), dir / "rf_tfrecord" / s.name / (s.name + ".tfrecord"));
    fs::copy(cvat / "tfrecord" / "label_map.pbtxt", dir / "rf_tfrecord" / s.name / "label_map.pbtxt");
    for (const auto& im : s.images) {
      fs::copy(cvat / "coco" / "images" / s.name / im.file(), dir / "rf_coco" / s.name / im.file());
      fs::copy(cvat / "coco" / "images" / s.name / im.file(), dir / "rf_voc" / s.name / im.file());
      fs::copy(cvat / "coco" / "images" / s.name / im.file(), dir / "rf_tfrecord" / s.name / im.file());
      fs::copy(cvat / "voc" / "Annotations" / (im.stem + ".xml"), dir / "rf_voc" / s.name / (im.stem + ".xml"));
    }
  }
  for (const auto& [name, format] :
       std::vector<std::pair<std::string, DatasetFormat>>{{"rf_coco", DatasetFormat::coco},
                                                          {"rf_voc", DatasetFormat::voc},
                                                          {"rf_tfrecord", DatasetFormat::tfrecord}}) {
    SCOPED_TRACE(name);
    const auto detected = detect_format(dir / name);
    EXPECT_EQ(detected.format, format) << detected.reason;
    EXPECT_NE(detected.reason.find("Roboflow"), std::string::npos) << detected.reason;
    FormatLoadOptions options;
    options.extract_dir = dir / "extracted";
    const auto other = load_format(dir / name, format, options);
    EXPECT_EQ(other.train_subset, "Train");
    // TFRecord has no ignore regions: its crowd objects are left out by the writer.
    if (format != DatasetFormat::tfrecord) {
      expect_equal(coco.train, other.train);
      ASSERT_TRUE(other.val);
      expect_equal(*coco.val, *other.val);
    } else {
      EXPECT_EQ(coco.train.summary.boxes, other.train.summary.boxes);
    }
  }
}

// Open Images: boxes as fractions and masks paired with their box by its coordinates (masks equal
// pixel for pixel); group-of boxes as crowd regions.
TEST(FormatsRoundTrip, OpenImages) {
  const auto write = [](const Spec& s, const fs::path& root) { write_as(DatasetFormat::open_images, s, root); };
  round_trip("open_images", make_spec({Kind::box, Kind::mask}), DatasetFormat::open_images, write, /*masks=*/true);
  round_trip("open_images_groups", make_spec({Kind::box, Kind::crowd}), DatasetFormat::open_images, write);
}

// Open Images' masks have their own resolution: resized to the image's by nearest neighbour, as
// OpenCV's INTER_NEAREST (source index floor(i * source / target)); a mask without its box is an
// object of its own.
// resize_nearest picks OpenCV's INTER_NEAREST pixels: random masks up and down, 0 pixels differ.
TEST(FormatsDecisions, ResizeNearestIsOpenCvs) {
  std::mt19937 rng(3);
  int64_t pixels = 0, differ = 0;
  for (int t = 0; t < 200; ++t) {
    const int h = 1 + rng() % 40, w = 1 + rng() % 40, H = 1 + rng() % 60, W = 1 + rng() % 60;
    cv::Mat m(h, w, CV_8UC1);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) m.at<uint8_t>(y, x) = rng() % 2;
    cv::Mat want;
    cv::resize(m, want, cv::Size(W, H), 0, 0, cv::INTER_NEAREST);
    const auto got = dd::decode(resize_nearest(dd::encode(m.data, h, w, dd::MaskLayout::row_major), H, W),
                                dd::MaskLayout::row_major);
    for (int p = 0; p < H * W; ++p) differ += got[p] != want.data[p];
    pixels += H * W;
  }
  std::printf("resize_nearest against cv::resize INTER_NEAREST: %lld of %lld pixels differ\n",
              static_cast<long long>(differ), static_cast<long long>(pixels));
  EXPECT_EQ(differ, 0);
}

// A LabelMe <segm> whose PNG is missing is its <box> alone, trained (not a crowd region).
TEST(FormatsDecisions, LabelMeSegmWithoutItsPng) {
  const auto dir = temp_dir("labelme_no_png");
  write_labelme(make_spec({Kind::mask, Kind::box}), dir);
  fs::remove_all(dir / "Train" / "Masks");
  const auto raw = read_labelme(dir);
  int64_t without = 0;
  for (const auto& im : raw.subsets.at(0).images)
    for (const auto& o : im.objects) without += !o.mask && !o.iscrowd;
  EXPECT_EQ(without, 9);  // Train's objects: every one a box now
  ASSERT_FALSE(raw.warnings.empty());
  EXPECT_NE(raw.warnings.back().find("have no PNG in Masks/"), std::string::npos) << raw.warnings.back();
}

TEST(FormatsDecisions, OpenImagesMasksResizedToTheImage) {
  const auto dir = temp_dir("open_images_resize");
  write_file(dir / "annotations" / "class-descriptions.csv", "cat,Cat\n");
  write_file(dir / "annotations" / "train-annotations-object-segmentation.csv",
             "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n"
             "a_m.png,a,cat,x,,,,,,\n");
  cv::Mat m(2, 3, CV_8UC1, cv::Scalar(0));
  m.at<uint8_t>(0, 1) = 255, m.at<uint8_t>(1, 2) = 255;  // rows "010", "001"
  std::vector<uchar> png;
  cv::imencode(".png", m, png);
  write_file(dir / "masks" / "train" / "a_m.png", std::string(png.begin(), png.end()));
  SImage im{"a", 6, 4, {}};
  write_image(dir / "images" / "train" / "a.png", im);
  EXPECT_EQ(detect_format(dir).format, DatasetFormat::open_images);
  const auto s = load_format(dir, DatasetFormat::open_images);
  ASSERT_EQ(s.train.images.size(), 1u);
  ASSERT_EQ(s.train.images[0].objects.size(), 1u);
  const auto& o = s.train.images[0].objects[0];
  ASSERT_TRUE(o.segmentation.rle.has_value());
  const auto got = dd::decode(*o.segmentation.rle, dd::MaskLayout::row_major);
  const std::vector<uint8_t> want = {0, 0, 1, 1, 0, 0,  //
                                     0, 0, 1, 1, 0, 0,  //
                                     0, 0, 0, 0, 1, 1,  //
                                     0, 0, 0, 0, 1, 1};
  EXPECT_EQ(got, want);
  EXPECT_EQ(o.bbox, (std::array<double, 4>{2, 0, 4, 4}));
  EXPECT_EQ(o.area, 8);
}

TEST(FormatsMalformed, OpenImages) {
  const auto dir = temp_dir("open_images_bad");
  write_file(dir / "annotations" / "class-descriptions.csv", "cat,Cat\n");
  const std::string header =
      "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {header + "a,x,dog,1,0,1,0,1,0,0,0,0,0\n", {"train-annotations-bbox.csv: line 2", "LabelName 'dog' is not in"}},
      {header + "a,x,cat,1,0,1.5,0,1,0,0,0,0,0\n", {"line 2", "XMax must be in [0, 1], got '1.5'"}},
      {header + "a,x,cat,1,0.5,0.25,0,1,0,0,0,0,0\n", {"line 2", "the box's max is below its min"}},
      {"ImageID,LabelName\na,cat\n", {"train-annotations-bbox.csv: line 1", "no column 'IsGroupOf'"}},
      {header + "a,x,cat,1,0,1\n", {"line 2", "the line has 6 fields"}},
  };
  for (const auto& [text, pieces] : cases) {
    write_file(dir / "annotations" / "train-annotations-bbox.csv", text);
    expect_error([&] { read_open_images(dir); }, pieces);
  }
  // A small PNG of 2048 x 4096 horizontal stripes is 8.4 M run counts: the third row naming it passes
  // the 2^24 + 64 per CSV byte the masks of a file may take together.
  fs::remove(dir / "annotations" / "train-annotations-bbox.csv");
  cv::Mat stripes(2048, 4096, CV_8UC1, cv::Scalar(0));
  for (int y = 0; y < stripes.rows; y += 2) stripes.row(y).setTo(255);
  std::vector<uchar> png;
  cv::imencode(".png", stripes, png);
  write_file(dir / "masks" / "train" / "s.png", std::string(png.begin(), png.end()));
  std::string rows = "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n";
  for (int i = 0; i < 3; ++i) rows += "s.png,a,cat,x,,,,,,\n";
  write_file(dir / "annotations" / "train-annotations-object-segmentation.csv", rows);
  expect_error([&] { read_open_images(dir); }, {"line 4", "25165827 run counts, more than 16786496"});
}

// VOC carries masks in SegmentationObject/ (the box from the XML); KITTI keeps a mask's box alone.
TEST(FormatsRoundTrip, VocInstanceMasksKittiBoxes) {
  // One mask an image at most: SegmentationObject/ holds one object a pixel, so overlaps go to the later.
  round_trip("voc_masks", make_spec({Kind::mask, Kind::box, Kind::box}), DatasetFormat::voc, write_voc,
             /*masks=*/true, /*areas=*/false);
}

// detr_make_dataset --format F: the synthetic sample in each format loads as its COCO export does
// (MOT names images by frame, LabelMe orders labels by first appearance and YOLO's %.6f moves boxes of
// odd size: their own round trips above cover them).
TEST(FormatsRoundTrip, SyntheticSampleInEachFormat) {
  const auto dir = temp_dir("synthetic");
  dd::SyntheticExportOptions o;
  o.num_images = 4, o.width = 64, o.height = 64, o.cvat_quirks = false;  // sizes exact in YOLO and float32
  dd::write_synthetic_export(dir / "coco", o, DatasetFormat::coco);
  const auto coco = load_format(dir / "coco", DatasetFormat::coco);
  for (const auto format :
       {DatasetFormat::voc, DatasetFormat::tfrecord, DatasetFormat::cvat, DatasetFormat::datumaro}) {
    SCOPED_TRACE(format_name(format));
    const fs::path root = dir / format_name(format);
    dd::write_synthetic_export(root, o, format);
    EXPECT_EQ(detect_format(root).format, format);
    FormatLoadOptions options;
    options.extract_dir = dir / "extracted";
    expect_equal(coco.train, load_format(root, format, options).train, /*areas=*/false);
  }
}

// detr_make_dataset --format ultralytics: the sample's polygons as %.6f fractions, their bounding boxes
// within half a unit of the sixth decimal of the COCO export's.
TEST(FormatsRoundTrip, SyntheticSampleAsUltralytics) {
  const auto dir = temp_dir("synthetic_ultralytics");
  dd::SyntheticExportOptions o;
  o.num_images = 4, o.width = 64, o.height = 64, o.cvat_quirks = false;
  dd::write_synthetic_export(dir / "coco", o, DatasetFormat::coco);
  dd::write_synthetic_export(dir / "ultralytics", o, DatasetFormat::ultralytics);
  EXPECT_EQ(detect_format(dir / "ultralytics").format, DatasetFormat::ultralytics);
  const auto a = load_format(dir / "coco", DatasetFormat::coco).train;
  const auto b = load_format(dir / "ultralytics", DatasetFormat::ultralytics).train;
  ASSERT_EQ(a.images.size(), b.images.size());
  EXPECT_EQ(a.summary.boxes, b.summary.boxes);
  for (size_t i = 0; i < a.images.size(); ++i) {
    ASSERT_EQ(a.images[i].objects.size(), b.images[i].objects.size());
    for (size_t k = 0; k < a.images[i].objects.size(); ++k) {
      EXPECT_EQ(a.images[i].objects[k].category_id, b.images[i].objects[k].category_id);
      for (int j = 0; j < 4; ++j)
        EXPECT_NEAR(a.images[i].objects[k].bbox[j], b.images[i].objects[k].bbox[j], 5e-7 * 64 * 2);
    }
  }
}

TEST(FormatsRoundTrip, PolygonPointsKeptInTheRawExport) {
  const auto dir = temp_dir("polygons");
  const Spec spec = make_spec({Kind::polygon});
  write_cvat(spec, dir);
  const RawExport raw = read_cvat_xml(dir);
  const auto& o = raw.subsets.at(0).images.at(2).objects.at(0);
  ASSERT_EQ(o.polygons.size(), 1u);
  EXPECT_EQ(o.polygons[0], triangle(spec.subsets[0].images[2].objects[0].box));
}

TEST(FormatsRoundTrip, UltralyticsPolygonsKeptNormalised) {
  const auto dir = temp_dir("ultralytics_polygons");
  const Spec spec = make_spec({Kind::polygon});
  write_ultralytics(spec, dir);
  const RawExport raw = read_ultralytics(dir);
  ASSERT_EQ(raw.subsets.size(), 2u);
  EXPECT_EQ(raw.subsets[0].name, "train");
  EXPECT_EQ(raw.subsets[1].name, "val");
  const SImage& im = spec.subsets[0].images[2];
  const RawObject& o = raw.subsets[0].images.at(2).objects.at(0);
  ASSERT_EQ(o.polygons.size(), 1u);
  EXPECT_TRUE(o.normalized);
  const auto pixels = pixel_polygons(o, im.width, im.height);
  const auto expected = triangle(im.objects[0].box);
  ASSERT_EQ(pixels[0].size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(pixels[0][i], expected[i], 1e-9) << i;
}

TEST(FormatsRoundTrip, YoloSixDecimalsOnOtherSizes) {
  // CVAT writes %.6f: on a width that is not a power of two the box moves by up to 5e-7 * width.
  Spec spec = make_spec({Kind::box});
  for (auto& s : spec.subsets)
    for (auto& im : s.images) im.width = 1000, im.height = 750;
  const auto dir = temp_dir("yolo_precision");
  write_coco(spec, dir / "coco");
  write_yolo(spec, dir / "yolo");
  const auto a = load_format(dir / "coco", DatasetFormat::coco).train;
  const auto b = load_format(dir / "yolo", DatasetFormat::yolo).train;
  for (size_t i = 0; i < a.images.size(); ++i)
    for (size_t k = 0; k < a.images[i].objects.size(); ++k)
      for (int j = 0; j < 4; ++j)
        EXPECT_NEAR(a.images[i].objects[k].bbox[j], b.images[i].objects[k].bbox[j], 5e-7 * 1000 * 2);
}

TEST(FormatsRoundTrip, MotMinVisibilityMakesIgnoreRegions) {
  const auto dir = temp_dir("mot_visibility");
  write_mot(make_spec({Kind::box}, {"default"}), dir);
  const std::string rows = read_file(dir / "gt" / "gt.txt");
  std::string gt;  // even frames seen with visibility 0
  for (const auto& line : split_lines(rows)) {
    std::string row(line);
    if (std::stoi(row) % 2 == 0) row.replace(row.rfind(",1.0"), 4, ",0.0");
    gt += row + "\r\n";
  }
  write_file(dir / "gt" / "gt.txt", gt);
  FormatLoadOptions options;
  options.mot_min_visibility = 0.5;
  const auto all = load_format(dir, DatasetFormat::mot).train;
  const auto visible = load_format(dir, DatasetFormat::mot, options).train;
  EXPECT_EQ(all.summary.crowd_dropped, 0);
  EXPECT_GT(visible.summary.crowd_dropped, 0);  // even frames are written with visibility 0
  EXPECT_EQ(all.summary.boxes, visible.summary.boxes + visible.summary.crowd_dropped);
}

TEST(FormatsRoundTrip, VocBackgroundObjectsAreDroppedAndCounted) {
  const auto dir = temp_dir("voc_background");
  Spec spec = make_spec({Kind::box});
  write_voc(spec, dir);
  const fs::path xml = dir / "Annotations" / (spec.subsets[0].images[0].stem + ".xml");
  std::string text = read_file(xml);
  text.replace(text.find("<name>cat</name>"), 16, "<name>background</name>");
  write_file(xml, text);
  const auto data = load_format(dir, DatasetFormat::voc).train;
  EXPECT_EQ(data.categories.size(), 3u);
  EXPECT_EQ(data.images[0].objects.size(), 2u);
  bool warned = false;
  for (const auto& w : data.summary.warnings) warned |= w.find("background") != std::string::npos;
  EXPECT_TRUE(warned);
}

// ---------------------------------------------------------------------------------------------
// The XML reader (pugixml and the checks around it).

TEST(FormatsXml, ElementsAttributesTextEntitiesCdataComments) {
  const auto doc = parse_xml(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE annotation>\n<!-- c -->\n"
      "<a x='1' y=\"a &amp; b &lt;&gt; &quot;&apos; &#65;&#x42;&#x20AC;&#233;&#x1F600;\">\n"
      "  <b>t<![CDATA[<raw> & ]]>u</b><?pi ignored?><c/>\n  <b>2</b>\n</a>\n<!-- after -->\n",
      "doc.xml");
  EXPECT_EQ(doc.name, "a");
  EXPECT_EQ(doc.line, 4);
  ASSERT_NE(doc.attribute("y"), nullptr);
  EXPECT_EQ(*doc.attribute("y"), "a & b <> \"' AB\xE2\x82\xAC\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(doc.children.size(), 3u);
  EXPECT_EQ(doc.child("b")->text, "t<raw> & u");
  EXPECT_EQ(doc.children_named("b").size(), 2u);
  EXPECT_EQ(doc.children_named("b")[1]->line, 6);
  EXPECT_EQ(doc.child("c")->children.size(), 0u);
  EXPECT_EQ(doc.child("zz"), nullptr);
}

TEST(FormatsXml, EveryMalformedDocumentIsOneLineNamingTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"<a>\n<b>\n</a>", "line 3: end tag </a> does not match the open element"},
      {"<a><b></a></b>", "line 1: end tag </a> does not match"},
      {"<a>\n<b>", "line 2: unterminated element"},
      {"<a>&nbsp;</a>", "line 1: unknown entity &nbsp;"},
      {"<a>\n<b x='1'>\n&lol;</b></a>", "line 3: unknown entity &lol;"},
      {"<a>&amp</a>", "'&' that starts no entity"},
      {"<a x='&e;'/>", "unknown entity &e;"},
      {"<a x='1' x='2'/>", "duplicate attribute 'x' in <a>"},
      {"<a x='<'/>", "'<' inside an attribute value (a.x)"},
      {"<a x=1/>", "error parsing element attribute at '1/>'"},
      {"<!DOCTYPE a [<!ENTITY e 'x'>]><a/>", "internal subset"},
      {"<a/><!DOCTYPE a>", "DOCTYPE after the root element"},
      {"<a/><b/>", "a second root element <b>"},
      {"<a/>text", "text outside the root element"},
      {"text<a/>", "text outside the root element"},
      {"", "no root element"},
      {"<!-- only -->", "no root element"},
      {"<a>&#0;</a>", "invalid character reference &#0;"},
      {"<a>&#x110000;</a>", "invalid character reference"},
      {"<a>&#xD800;</a>", "invalid character reference"},
      {"<a><![CDATA[x</a>", "error parsing CDATA section"},
      {"<?xml version='1.0' encoding='UTF-16'?><a/>", "encoding 'utf-16' is not supported"},
      {"<a/>\n<?xml version='1.0'?>", "line 2: XML declaration not at the start"},
      {" <?xml version='1.0'?><a/>", "XML declaration not at the start"},
      {"<a b='1'c='2'/>", "error parsing element attribute"},
      {"<1a/>", "could not determine tag type"},
      {"<a>\n\xff</a>", "line 2: invalid UTF-8 at byte 4"},
      {"<a>\xC0\xAF</a>", "invalid UTF-8 at byte 3"},      // overlong '/'
      {"<a>\xED\xA0\x80</a>", "invalid UTF-8 at byte 3"},  // a surrogate
      {"<a>\xE2\x82</a>", "invalid UTF-8 at byte 3"},      // a character cut short
      {std::string("<a>x\0</a>", 9), "NUL byte at byte 4"},
  };
  for (const auto& [text, piece] : cases) {
    SCOPED_TRACE(text);
    expect_error([&] { parse_xml(text, "f.xml"); }, {"f.xml: line ", piece});
  }
  // pugixml accepts '--' inside a comment; comments are dropped either way.
  EXPECT_EQ(parse_xml("<a><!-- x -- y -->t</a>", "f.xml").text, "t");
}

// Every prefix of a document (a truncated file) parses or fails with one line naming the file.
TEST(FormatsXml, TruncatedDocumentsFailInOneLine) {
  const std::string doc =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotation>\n  <filename>a &amp; b.jpg</filename>\n"
      "  <size><width>64</width><height>32</height></size>\n  <object><name>caf\xC3\xA9</name><bndbox>"
      "<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>\n"
      "  <!-- c --><![CDATA[x]]>\n</annotation>\n";
  int parsed = 0;
  for (size_t n = 0; n < doc.size(); ++n) {
    SCOPED_TRACE(n);
    const std::string what = error_of([&] { parse_xml(doc.substr(0, n), "cut.xml"); });
    if (what.empty()) {
      ++parsed;
      continue;
    }
    EXPECT_EQ(what.rfind("cut.xml: line ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_LE(parsed, 1);  // only the one without the final newline
  EXPECT_EQ(parse_xml(doc, "cut.xml").child("object")->child("name")->text, "caf\xC3\xA9");
}

// pugixml expands no entity: a document that defines any (an entity bomb) is refused before they
// could matter, a reference to an undefined one is an error, and an external DTD is never fetched.
TEST(FormatsXml, EntityBombsAreRefused) {
  std::string bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n";
  for (int i = 1; i <= 9; ++i) {
    bomb += " <!ENTITY lol" + std::to_string(i) + " \"";
    for (int k = 0; k < 10; ++k) bomb += "&lol" + (i > 1 ? std::to_string(i - 1) : std::string()) + ";";
    bomb += "\">\n";
  }
  bomb += "]>\n<lolz>&lol9;</lolz>\n";
  expect_error([&] { parse_xml(bomb, "bomb.xml"); },
               {"bomb.xml: line 2", "DOCTYPE with an internal subset (entity definitions) is not supported"});
  expect_error([&] { parse_xml("<lolz>&lol9;</lolz>", "ref.xml"); }, {"ref.xml: line 1", "unknown entity &lol9;"});
  const auto doc = parse_xml("<!DOCTYPE a SYSTEM \"http://example.invalid/a.dtd\">\n<a>&amp;</a>", "ext.xml");
  EXPECT_EQ(doc.text, "&");
}

TEST(FormatsXml, LimitsOnDepthElementsAndSize) {
  XmlLimits limits;
  limits.max_depth = 3;
  expect_error([&] { parse_xml("<a><b><c><d/></c></b></a>", "deep.xml", limits); },
               {"deep.xml: line 1", "nested deeper than 3"});
  limits = {};
  limits.max_elements = 3;
  expect_error([&] { parse_xml("<a><b/><b/><b/></a>", "many.xml", limits); }, {"many.xml", "more than 3 elements"});
  EXPECT_NO_THROW(parse_xml("<a><b/><!-- c --><?pi?><b/></a>", "many.xml", limits));  // '<!', '<?': no element
  // The count is an upper bound: a '<' and a name inside a comment or CDATA section counts too.
  expect_error([&] { parse_xml("<a><b/><!-- <c> --><b/></a>", "many.xml", limits); }, {"more than 3 elements"});
  // Attributes count too (pugixml's 40 bytes each): two elements and two attributes are more than 3.
  expect_error([&] { parse_xml("<a x='1'><b y='2'/></a>", "many.xml", limits); },
               {"more than 3 elements", "attributes counted too"});
  limits = {};
  limits.max_bytes = 10;
  expect_error([&] { parse_xml("<a>0123456789</a>", "big.xml", limits); }, {"big.xml", "above the limit of 10"});
  // 300,000 attributes on one element (pugixml reads them in one pass; the limit and the duplicate
  // check come after, over at most 256) and 10 million empty elements in 40 MB (refused by counting
  // start tags before pugixml builds a node for any: measured at 2.3 GB when they were built).
  std::string attrs = "<annotation";
  for (int i = 0; i < 300000; ++i) attrs += " a" + std::to_string(i) + "=''";
  attrs += "/>";
  auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { parse_xml(attrs, "attrs.xml"); },
               {"attrs.xml: line 1", "more than 256 attributes in <annotation>"});
  std::string empties = "<a>";
  for (int i = 0; i < 10'000'000; ++i) empties += "<b/>";
  empties += "</a>";
  expect_error([&] { parse_xml(empties, "empty.xml"); },
               {"empty.xml: line 1", "more than 5000000 elements (at most one per 8 bytes of a 40000007-byte file"});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "  300,000 attributes and 10,000,000 empty elements refused in " << s << " s\n";
  EXPECT_LT(s, 5.0);
  const auto dir = temp_dir("xml_limits");
  write_file(dir / "big.xml", "<a>0123456789</a>");
  expect_error([&] { read_xml_file(dir / "big.xml", limits); }, {"big.xml", "above the limit of 10"});
  // Deep documents fail cleanly instead of exhausting the stack: nested beyond the limit, and a deep
  // one that pugixml refuses first (never closed) or that holds too many elements.
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "<a>";
  std::string closed = deep;
  for (int i = 0; i < 10000; ++i) closed += "</a>";
  expect_error([&] { parse_xml(closed, "d.xml"); }, {"d.xml: line 1", "nested deeper than 256"});
  expect_error([&] { parse_xml(deep, "d.xml"); }, {"d.xml: line 1", "unterminated element"});
  for (int i = 0; i < 90000; ++i) deep += "<a>";
  expect_error([&] { parse_xml(deep, "d.xml"); }, {"d.xml: line 1", "more than 65536 elements"});
}

TEST(FormatsXml, PeekRoot) {
  const auto dir = temp_dir("xml_peek");
  write_file(dir / "a.xml", "<?xml version='1.0'?>\n<!-- <x> -->\n<annotations><b/></annotations>");
  EXPECT_EQ(peek_xml_root(dir / "a.xml"), "annotations");
  write_file(dir / "b.xml", "not xml");
  EXPECT_EQ(peek_xml_root(dir / "b.xml"), "");
  // Only the first 64 KiB are read: the root of a longer file is still found there.
  write_file(dir / "c.xml", "<annotation>" + std::string(100000, ' ') + "<object/></annotation>");
  EXPECT_EQ(peek_xml_root(dir / "c.xml"), "annotation");
  write_file(dir / "d.xml", std::string("\0\xff<", 3));
  EXPECT_EQ(peek_xml_root(dir / "d.xml"), "");
}

// ---------------------------------------------------------------------------------------------
// Text helpers and TFRecord internals.

TEST(FormatsText, StrictNumbersAndQuoting) {
  EXPECT_EQ(parse_double(" 1.5 "), 1.5);
  EXPECT_EQ(parse_double("-2e3"), -2000.0);
  for (const char* bad : {"", "nan", "inf", "0x10", "1.5x", "1e999", "1,5"}) EXPECT_FALSE(parse_double(bad)) << bad;
  EXPECT_EQ(parse_int("42"), 42);
  EXPECT_FALSE(parse_int("4.0"));
  EXPECT_EQ(parse_int("4.0", true), 4);
  EXPECT_FALSE(parse_int("4.5", true));
  EXPECT_FALSE(parse_int("99999999999999999999"));
  EXPECT_EQ(quote("a\nb'\x01"), "'a\\nb\\'\\x01'");
  EXPECT_EQ(split_lines("a\r\nb\n\nc").size(), 4u);
  EXPECT_EQ(split_lines("a\n").size(), 1u);
  EXPECT_EQ(invalid_utf8_at("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("ab\x80"), 2u);            // a lone continuation byte
  EXPECT_EQ(invalid_utf8_at("a\xC1\xBF"), 1u);         // overlong
  EXPECT_EQ(invalid_utf8_at("\xE0\x80\x80"), 0u);      // overlong
  EXPECT_EQ(invalid_utf8_at("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(invalid_utf8_at("x\xF0\x9F\x98"), 1u);     // cut short
}

TEST(FormatsTfRecord, ExampleParsingPackedAndUnpacked) {
  // An Example with unpacked floats/ints and an unknown field, as other writers may emit.
  std::string unpacked_floats =
      varint(1 << 3 | 5) + std::string("\x00\x00\x80\x3e", 4) + varint(1 << 3 | 5) + std::string("\x00\x00\x00\x3f", 4);
  std::string unpacked_ints = varint(1 << 3 | 0) + varint(7) + varint(1 << 3 | 0) + varint(uint64_t(-1));
  const std::string ex =
      example(
          {{"f", len_field(2, unpacked_floats)}, {"i", len_field(3, unpacked_ints)}, {"b", bytes_feature({"x", ""})}}) +
      varint(9 << 3 | 0) + varint(5);
  const auto f = parse_tf_example(ex);
  ASSERT_EQ(f.at("f").floats, (std::vector<float>{0.25f, 0.5f}));
  ASSERT_EQ(f.at("i").ints, (std::vector<int64_t>{7, -1}));
  ASSERT_EQ(f.at("b").bytes.size(), 2u);
  EXPECT_EQ(f.at("b").bytes[1], "");
  const char* malformed = "truncated or malformed protobuf field";
  expect_error([&] { parse_tf_example(ex.substr(0, ex.size() - 3)); }, {malformed});     // a field past the end
  expect_error([&] { parse_tf_example(std::string("\x0a\xff", 2)); }, {malformed});      // a truncated varint
  expect_error([&] { parse_tf_example(varint(1 << 3 | 3)); }, {malformed});              // a group that never ends
  expect_error([&] { parse_tf_example(varint(0 << 3 | 0) + varint(1)); }, {malformed});  // field number 0
  // Groups nested deeper than the recursion limit: rejected, not a stack overflow.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += varint(9 << 3 | 3);
  for (int i = 0; i < 100000; ++i) deep += varint(9 << 3 | 4);
  expect_error([&] { parse_tf_example(deep); }, {"nesting deeper than"});
  // A Feature holding two kinds of lists keeps the last (protobuf's oneof, as TensorFlow parses it).
  const auto two = parse_tf_example(example({{"x", len_field(1, len_field(1, "a")) + len_field(3, "")}}));
  EXPECT_EQ(two.at("x").kind, TfFeature::Kind::ints);
  EXPECT_TRUE(two.at("x").bytes.empty());
}

// What a record declares is counted before protobuf parses it: an empty bytes value is 2 bytes of the
// record and ~90 of memory, an entry 2 and ~100 (~400 with a key and a list), a packed int64 1 and ~24.
std::string empty_bytes_values(size_t n) {
  std::string list(2 * n, '\0');
  for (size_t i = 0; i < list.size(); i += 2) list[i] = '\x0a';  // field 1, length 0
  return len_field(1, list);
}

TEST(FormatsTfRecord, DeclaredValuesAreBoundedBeforeParsing) {
  using detr::datasets::formats::TfExampleTooLarge;
  auto refused = [](const std::string& record, const std::vector<std::string>& needles) {
    std::string what;
    try {
      parse_tf_example(record);
    } catch (const TfExampleTooLarge& e) {
      what = e.what();
    }
    for (const auto& needle : needles) EXPECT_NE(what.find(needle), std::string::npos) << needle << " not in " << what;
  };
  refused(example({{"b", empty_bytes_values(1000000)}}),
          {"declares 1000001 values (entries 1, bytes values 1000000, numbers 0)", "8 per record byte"});
  std::string entries;
  for (int i = 0; i < 1000000; ++i) entries += varint(1 << 3 | 2) + varint(0);
  refused(len_field(1, entries), {"declares 1000000 values (entries 1000000,"});
  refused(example({{"i", len_field(3, len_field(1, std::string(3000000, '\0')))}}), {"numbers 3000000)"});
  // Within the bound: a million packed floats (4 bytes each), and 20,000 boxes with no image.
  EXPECT_EQ(parse_tf_example(example({{"f", float_feature(std::vector<float>(1000000, 0.5f))}})).at("f").floats.size(),
            1000000u);
  const size_t n = 20000;
  const auto boxes =
      parse_tf_example(example({{"image/object/bbox/xmin", float_feature(std::vector<float>(n, 0.1f))},
                                {"image/object/bbox/ymin", float_feature(std::vector<float>(n, 0.1f))},
                                {"image/object/bbox/xmax", float_feature(std::vector<float>(n, 0.5f))},
                                {"image/object/bbox/ymax", float_feature(std::vector<float>(n, 0.5f))},
                                {"image/object/class/label", int_feature(std::vector<int64_t>(n, 1))},
                                {"image/object/class/text", bytes_feature(std::vector<std::string>(n, "cat"))}}));
  EXPECT_EQ(boxes.at("image/object/class/text").bytes.size(), n);
}

TEST(FormatsTfRecord, FramingCrcsAndLengthsAreChecked) {
  const auto dir = temp_dir("tfrecord_framing");
  const std::string good = framed("hello") + framed("");
  write_file(dir / "ok.tfrecord", good);
  TfRecordReader reader(dir / "ok.tfrecord");
  std::string r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r, "hello");
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r, "");
  EXPECT_FALSE(reader.next(r));
  auto read_all = [&](const std::string& bytes) {
    write_file(dir / "bad.tfrecord", bytes);
    TfRecordReader bad(dir / "bad.tfrecord");
    std::string rec;
    while (bad.next(rec)) {
    }
  };
  std::string bad_len_crc = good;
  bad_len_crc[8] ^= 1;
  expect_error([&] { read_all(bad_len_crc); }, {"bad.tfrecord: record 0 at byte 0", "the length's CRC does not match"});
  std::string bad_data = good;
  bad_data[13] ^= 1;
  expect_error([&] { read_all(bad_data); }, {"record 0 at byte 0", "the data's CRC does not match"});
  expect_error([&] { read_all(good.substr(0, good.size() - 2)); }, {"record 1 at byte 21", "truncated"});
  std::string huge = framed("x");
  huge[5] = 1;  // declares 2^40 + 1 bytes; its CRC fixed so the length check is what fails
  const uint32_t crc = detr::util::masked_crc32c(huge.data(), 8);
  for (int i = 0; i < 4; ++i) huge[8 + i] = char((crc >> (8 * i)) & 0xFF);
  expect_error([&] { read_all(huge); }, {"declares 1099511627777 bytes"});
}

TEST(FormatsTfRecord, LabelMapTextFormat) {
  const auto dir = temp_dir("label_map");
  write_file(dir / "a.pbtxt",
             "# comment\nitem {\n  name: \"b\\\"q\"\n  id: 2\n  display_name: 'B'\n}\nitem: { id: 1; display_name: 'a' "
             "keypoints { id: 0 } }\n");
  const auto items = read_label_map(dir / "a.pbtxt");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0], (std::pair<int64_t, std::string>{2, "b\"q"}));
  EXPECT_EQ(items[1], (std::pair<int64_t, std::string>{1, "a"}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"item { id: 1 }", "line 1: item id 1 has no name"},
      {"item { name: 'a' }", "line 1: item without an id"},
      {"item { id: 0 name: 'a' }", "line 1: item.id must be a positive integer, got '0'"},
      {"item { id: 1 name: 'a' }\nitem { id: 1 name: 'b' }", "line 2: duplicate item id 1"},
      {"item { id: 1 name: 'a }", "line 1: unterminated string"},
      {"thing { }", "line 1: expected 'item {', got 'thing'"},
      {"item { id: 1 name: 'a'", "unterminated block"},
      {"", "no items"},
  };
  for (const auto& [text, piece] : cases) {
    SCOPED_TRACE(text);
    write_file(dir / "b.pbtxt", text);
    expect_error([&] { read_label_map(dir / "b.pbtxt"); }, {"b.pbtxt", piece});
  }
}

// CVAT's row-major runs over a box become the image-sized RLE of the same pixels: checked against
// painting the runs pixel by pixel, on hand-made and random boxes.
// Mask PNGs: read with their header checked first; 16-bit ones and other formats are refused.
TEST(FormatsMaskImage, HeaderCheckedBeforeDecoding) {
  const auto dir = temp_dir("mask_image");
  std::vector<uchar> bytes;
  cv::imencode(".png", cv::Mat(3, 4, CV_8UC4, cv::Scalar(1, 0, 0, 255)), bytes);
  write_file(dir / "ok.png", std::string(bytes.begin(), bytes.end()));
  const MaskImage img = read_mask_image(dir / "ok.png");
  EXPECT_EQ(img.height, 3);
  EXPECT_EQ(img.width, 4);
  EXPECT_EQ(img.channels, 4);
  cv::imencode(".png", cv::Mat(3, 4, CV_16UC1, cv::Scalar(1000)), bytes);
  write_file(dir / "deep.png", std::string(bytes.begin(), bytes.end()));
  expect_error([&] { read_mask_image(dir / "deep.png"); }, {"a 16-bit PNG; masks are 8-bit or less"});
  cv::imencode(".jpg", cv::Mat(3, 4, CV_8UC1, cv::Scalar(9)), bytes);
  write_file(dir / "m.jpg", std::string(bytes.begin(), bytes.end()));
  expect_error([&] { read_mask_image(dir / "m.jpg"); }, {"not a PNG whose size can be read"});
}

// The VOC colour map and its inverse agree on all 256 indices; other colours are no index.
TEST(FormatsVoc, ColourMap) {
  for (int i = 0; i < 256; ++i) {
    const auto c = voc_color(i);
    EXPECT_EQ(voc_color_index(c[0], c[1], c[2]), i);
  }
  EXPECT_EQ(voc_color(1), (std::array<uint8_t, 3>{0, 0, 128}));  // B, G, R: dark red
  EXPECT_EQ(voc_color(255), (std::array<uint8_t, 3>{192, 224, 224}));
  EXPECT_EQ(voc_color_index(1, 2, 3), -1);
}

TEST(FormatsCvat, MaskRunsAsImageRle) {
  // 4x3 mask at (10, 20): rows "0110", "0100", "0000".
  auto rle = dd::rle_from_row_runs(cvat_mask_runs("1, 2, 2, 1, 6", 4, 3), 10, 20, 4, 3, 30, 40);
  EXPECT_EQ(dd::to_bbox(rle), (std::array<double, 4>{11, 20, 2, 2}));
  EXPECT_EQ(dd::area(rle), 3u);
  rle = dd::rle_from_row_runs(cvat_mask_runs("2, 3, 7", 4, 3), 0, 0, 4, 3, 3, 4);  // a run across rows
  EXPECT_EQ(dd::to_bbox(rle), (std::array<double, 4>{0, 0, 4, 2}));
  EXPECT_EQ(dd::area(dd::rle_from_row_runs(cvat_mask_runs("12", 4, 3), 0, 0, 4, 3, 3, 4)), 0u);
  expect_error([] { cvat_mask_runs("1, 2", 4, 3); }, {"sum to 3, expected width*height = 12"});
  expect_error([] { cvat_mask_runs("1, x", 4, 3); }, {"rle count 1 is 'x'"});
  expect_error([] { cvat_mask_runs("13", 4, 3); }, {"rle count 0 is '13'"});
  expect_error([] { cvat_mask_runs("0", 0, 3); }, {"out of range"});
  expect_error([] { dd::rle_from_row_runs({12}, 1, 0, 4, 3, 3, 4); },
               {"box 4x3 at (1, 0) is not inside the 4x3 image"});
  // A run down a tall box is three rectangles, not a span a row: 2^29 - 512 pixels from 13 bytes.
  const auto tall = dd::rle_from_row_runs({0, 512 * 1048575}, 0, 0, 512, 1048575, 1048575, 512);
  EXPECT_EQ(tall.counts, (std::vector<uint32_t>{0, 512u * 1048575u}));
  std::mt19937 rng(7);
  int64_t pixels = 0, differ = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t W = 1 + rng() % 40, H = 1 + rng() % 40, bw = 1 + rng() % W, bh = 1 + rng() % H;
    const int64_t left = rng() % (W - bw + 1), top = rng() % (H - bh + 1);
    std::vector<int64_t> runs;
    std::vector<uint8_t> dense(static_cast<size_t>(H * W), 0);  // row-major
    for (int64_t pos = 0, k = 0; pos < bw * bh; ++k) {
      const int64_t n = std::min<int64_t>(bw * bh - pos, rng() % (k % 2 ? 2 * bw : bw + 3));
      for (int64_t p = pos; p < pos + n && k % 2; ++p) dense[(top + p / bw) * W + left + p % bw] = 1;
      runs.push_back(n), pos += n;
    }
    if (runs.size() % 2 == 0 || rng() % 2) runs.push_back(0);  // trailing zero-length runs are allowed
    const auto rle = dd::rle_from_row_runs(runs, left, top, bw, bh, H, W);
    const auto got = dd::decode(rle, dd::MaskLayout::row_major);
    for (size_t p = 0; p < dense.size(); ++p) differ += got[p] != dense[p];
    EXPECT_EQ(rle.counts, dd::encode(dense.data(), H, W, dd::MaskLayout::row_major).counts);  // pycocotools' counts
    pixels += H * W;
  }
  std::printf("row runs -> image RLE: %lld of %lld pixels differ\n", static_cast<long long>(differ),
              static_cast<long long>(pixels));
  EXPECT_EQ(differ, 0);
}

// ---------------------------------------------------------------------------------------------
// Malformed files: one line naming the file, the line or element, the field and the value.

namespace {

// A small valid export of `write`, edited by `edit` (which gets its root), loaded with `format`.
void expect_load_error(const std::string& name,
                       const std::function<void(const Spec&, const fs::path&)>& write,
                       DatasetFormat format,
                       const std::function<void(const fs::path&)>& edit,
                       const std::vector<std::string>& pieces,
                       std::vector<std::string> subsets = {"Train", "Validation"}) {
  const auto dir = temp_dir("bad_" + name);
  write(make_spec({Kind::box, Kind::polygon, Kind::crowd}, subsets), dir);
  edit(dir);
  FormatLoadOptions options;
  options.extract_dir = dir / "extracted";
  expect_error([&] { load_format(dir, format, options); }, pieces);
}

// Replaces the first `from` in the file by `to`.
void replace_in(const fs::path& file, const std::string& from, const std::string& to) {
  std::string text = read_file(file);
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << file;
  text.replace(at, from.size(), to);
  write_file(file, text);
}

void yolo_boxes(const Spec& spec, const fs::path& root) {
  Spec boxes = spec;
  for (auto& s : boxes.subsets)
    for (auto& im : s.images)
      for (auto& o : im.objects) o.kind = Kind::box;
  write_yolo(boxes, root);
}

}  // namespace

TEST(FormatsMalformed, Yolo) {
  const auto f = DatasetFormat::yolo;
  expect_load_error("yolo_no_data", yolo_boxes, f, [](const fs::path& r) { fs::remove(r / "obj.data"); },
                    {"obj.data: not found"});
  expect_load_error("yolo_classes", yolo_boxes, f,
                    [](const fs::path& r) { replace_in(r / "obj.data", "classes = 3", "classes = 4"); },
                    {"obj.data: line 1", "'classes' is 4 but obj.names names 3 labels"});
  expect_load_error("yolo_classes_nan", yolo_boxes, f,
                    [](const fs::path& r) { replace_in(r / "obj.data", "classes = 3", "classes = x"); },
                    {"obj.data: line 1", "'classes' must be a positive integer, got 'x'"});
  expect_load_error("yolo_line", yolo_boxes, f,
                    [](const fs::path& r) { write_file(r / "obj_train_data/img000001.txt", "0 0.5 0.5 0.1\n"); },
                    {"img000001.txt: line 1", "expected 'class cx cy w h' (5 fields), got 4"});
  expect_load_error("yolo_class", yolo_boxes, f,
                    [](const fs::path& r) { write_file(r / "obj_train_data/img000001.txt", "\n3 0.5 0.5 0.1 0.1\n"); },
                    {"img000001.txt: line 2", "class must be an integer in [0, 3), got '3'"});
  expect_load_error("yolo_coord", yolo_boxes, f,
                    [](const fs::path& r) { write_file(r / "obj_train_data/img000001.txt", "1 0.5 nan 0.1 0.1\n"); },
                    {"img000001.txt: line 1", "cy must be a finite number, got 'nan'"});
  expect_load_error(
      "yolo_label_file", yolo_boxes, f, [](const fs::path& r) { fs::remove(r / "obj_train_data/img000003.txt"); },
      {"train.txt: line 3", "image 'data/obj_train_data/img000003.png': label file", "img000003.txt not found"});
  expect_load_error("yolo_names", yolo_boxes, f, [](const fs::path& r) { write_file(r / "obj.names", "a\nb\na\n"); },
                    {"obj.names: line 3", "duplicate label name 'a'"});
  expect_load_error("yolo_list", yolo_boxes, f, [](const fs::path& r) { fs::remove(r / "valid.txt"); },
                    {"obj.data: line 3", "subset 'valid': list 'valid.txt' not found"});
}

TEST(FormatsMalformed, Ultralytics) {
  const auto f = DatasetFormat::ultralytics;
  const auto w = write_ultralytics;
  const fs::path label = fs::path("labels") / "train" / "img000001.txt";
  auto labels = [label](const std::string& text) { return [=](const fs::path& r) { write_file(r / label, text); }; };
  expect_load_error("u_no_yaml", w, f, [](const fs::path& r) { fs::remove(r / "data.yaml"); },
                    {"data.yaml: not found"});
  expect_load_error("u_class", w, f, labels("\n3 0.5 0.5 0.1 0.1\n"),
                    {"img000001.txt: line 2", "class must be an integer in [0, 3), got '3'"});
  expect_load_error("u_class_name", w, f, labels("cat 0.5 0.5 0.1 0.1\n"),
                    {"img000001.txt: line 1", "class must be an integer in [0, 3), got 'cat'"});
  expect_load_error("u_odd", w, f, labels("1 0.1 0.1 0.2 0.1 0.2 0.2 0.3\n"),
                    {"img000001.txt: line 1", "got 7 coordinates (an odd count)"});
  expect_load_error("u_short", w, f, labels("0 0.5 0.5 0.1\n"),
                    {"img000001.txt: line 1", "expected 'class cx cy w h' or a polygon", "got 3 coordinates"});
  expect_load_error("u_one_point", w, f, labels("0 0.1 0.1 0.2 0.2\n0 0.1 0.1\n"),
                    {"img000001.txt: line 2", "(3 or more points), got 2 coordinates"});
  expect_load_error("u_nan", w, f, labels("1 0.5 nan 0.1 0.1\n"),
                    {"img000001.txt: line 1", "cy must be a finite number, got 'nan'"});
  expect_load_error("u_inf_polygon", w, f, labels("1 0.1 0.1 0.2 inf 0.3 0.3\n"),
                    {"img000001.txt: line 1", "y2 must be a finite number, got 'inf'"});
  expect_load_error("u_yaml_line", w, f,
                    [](const fs::path& r) { replace_in(r / "data.yaml", "path: .\n", "path: .\nthis is not yaml\n"); },
                    {"data.yaml: line 2", "expected 'key: value', got 'this is not yaml'"});
  expect_load_error("u_yaml_block", w, f,
                    [](const fs::path& r) { replace_in(r / "data.yaml", "path: .\n", "path: .\ndownload: |\n"); },
                    {"data.yaml: line 2", "value '|' is not read"});
  expect_load_error("u_names_gap", w, f, [](const fs::path& r) { replace_in(r / "data.yaml", "  1: 'dog'\n", ""); },
                    {"data.yaml: line 7", "names id 2 follows id 0", "(no id 1)"});
  expect_load_error("u_names_twice", w, f,
                    [](const fs::path& r) { replace_in(r / "data.yaml", "  1: 'dog'\n", "  1: 'dog'\n  1: 'cow'\n"); },
                    {"data.yaml: line 8", "names id 1 appears twice"});
  expect_load_error("u_nc", w, f,
                    [](const fs::path& r) { replace_in(r / "data.yaml", "path: .\n", "path: .\nnc: 4\n"); },
                    {"data.yaml: line 2", "'nc' is 4 but names holds 3"});
  expect_load_error("u_subset", w, f, [](const fs::path& r) { fs::remove_all(r / "images" / "val"); },
                    {"data.yaml: line 3", "val: 'images/val' is neither a folder, a list file nor an image"});
  expect_load_error(
      "u_pose", w, f,
      [](const fs::path& r) { replace_in(r / "data.yaml", "path: .\n", "path: .\nkpt_shape: [2, 3]\n"); },
      {"img000001.txt: line 1", "expected 'class cx cy w h' and 6 keypoint values (kpt_shape), got 5 fields"});
}

TEST(FormatsMalformed, UltralyticsYamlOutsideTheSubsetRead) {
  const fs::path file = "d.yaml";
  auto bad = [&](const std::string& text, const std::vector<std::string>& pieces) {
    SCOPED_TRACE(text);
    expect_error([&] { parse_ultralytics_yaml(text, file); }, pieces);
  };
  bad("names: [a]\nnames: [b]\n", {"d.yaml: line 2", "key 'names' appears twice (also line 1)"});
  bad("names: [a]\n  - b\n", {"d.yaml: line 2", "indented line outside a block: '- b'"});
  bad("names:\n  - a\n  0: b\n", {"d.yaml: line 3", "'names' mixes '- name' and 'id: name' lines"});
  bad("names:\n  - a\n    - b\n", {"d.yaml: line 3", "nested YAML is not read"});
  bad("names:\n\t- a\n", {"d.yaml: line 2", "tab in the indentation"});
  bad("names: {0: a}\n", {"d.yaml: line 1", "'names' must be a list or a map of id: name lines, got '{0: a}'"});
  bad("names: [a, , b]\n", {"d.yaml: line 1", "empty item in list"});
  bad("names: ['a]\n", {"d.yaml: line 1", "unterminated quote"});
  bad("names: [a]\ntrain: &anchor images\n", {"d.yaml: line 2", "value '&anchor images' is not read"});
  bad("names: [a]\nkpt_shape: [17, 4]\n", {"d.yaml: line 2", "'kpt_shape' must be [keypoints, 2 or 3]"});
  bad("names: [a, a]\n", {"d.yaml: line 1", "duplicate label name 'a'"});
  bad("names:\n  0: a\n  -1: b\n", {"d.yaml: line 3", "names id must be an integer in [0, 100000), got '-1'"});
  bad("train: images\n", {"d.yaml", "no 'names'"});
  bad("names:\n", {"d.yaml: line 1", "'names' is empty"});
  bad("names: [a]\ntrain:\n  x: y\n", {"d.yaml: line 3", "line 'x: y' under 'train' is not read"});
  bad("names: [a]\nkpt_shape:\n  - 17\n  - 3\n", {"d.yaml: line 2", "'kpt_shape' must be a flow list"});
  bad("names: [a]\nroboflow:\n  x\n", {"d.yaml: line 3", "line 'x' under 'roboflow' is not read"});
  bad("names: [a]\nflip_idx:\n  - |\n", {"d.yaml: line 3", "value '|' is not read"});
}

TEST(FormatsMalformed, Voc) {
  const auto f = DatasetFormat::voc;
  const fs::path xml = fs::path("Annotations") / "img000001.xml";
  expect_load_error("voc_label", write_voc, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<name>dog</name>", "<name>cow</name>"); },
                    {"img000001.xml: line ", "object 1: name 'cow' is not in the label map"});
  expect_load_error("voc_xmin", write_voc, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<xmin>2</xmin>", "<xmin>two</xmin>"); },
                    {"img000001.xml: line 6", "object 0: bndbox.xmin must be a number, got 'two'"});
  expect_load_error("voc_no_box", write_voc, f, [&](const fs::path& r) { replace_in(r / xml, "<bndbox>", "<box>"); },
                    {"img000001.xml: line ", "end tag </bndbox> does not match the open element"});
  expect_load_error("voc_no_ymax", write_voc, f, [&](const fs::path& r) { replace_in(r / xml, "<ymax>5</ymax>", ""); },
                    {"img000001.xml: line 6", "object 0: <bndbox> has no <ymax>"});
  expect_load_error("voc_difficult", write_voc, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<difficult>0", "<difficult>2"); },
                    {"img000001.xml: line 6", "object 0: difficult must be 0 or 1, got '2'"});
  expect_load_error("voc_size", write_voc, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<width>64</width>", "<width>0</width>"); },
                    {"img000001.xml: line 5", "size.width must be a positive integer, got '0'"});
  expect_load_error(
      "voc_entities", write_voc, f,
      [&](const fs::path& r) { replace_in(r / xml, "<annotation>", "<!DOCTYPE a [<!ENTITY x 'xx'>]>\n<annotation>"); },
      {"img000001.xml: line 2", "DOCTYPE with an internal subset (entity definitions) is not supported"});
  expect_load_error("voc_utf8", write_voc, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<name>dog</name>", "<name>d\xF0\x9Fg</name>"); },
                    {"img000001.xml: line ", "invalid UTF-8 at byte "});
  expect_load_error("voc_sets", write_voc, f, [&](const fs::path& r) { fs::remove_all(r / "ImageSets"); },
                    {"ImageSets/Main: not found"});
  expect_load_error("voc_labelmap", write_voc, f,
                    [&](const fs::path& r) { write_file(r / "labelmap.txt", "a::\n:1,2,3::\n"); },
                    {"labelmap.txt: line 2", "empty label name in ':1,2,3::'"});
}

TEST(FormatsMalformed, Mot) {
  const auto f = DatasetFormat::mot;
  auto gt = [](const std::string& row) {
    return [row](const fs::path& r) { write_file(r / "gt" / "gt.txt", "1,-1,1,1,4,4,1,1,1\n" + row + "\n"); };
  };
  const std::vector<std::string> one = {"default"};
  expect_load_error("mot_fields", write_mot, f, gt("1,-1,1,1,4,4,1,1"),
                    {"gt.txt: line 2", "expected 9 fields", "got 8"}, one);
  expect_load_error("mot_frame", write_mot, f, gt("x,-1,1,1,4,4,1,1,1"),
                    {"gt.txt: line 2", "frame_id must be an integer, got 'x'"}, one);
  expect_load_error("mot_class", write_mot, f, gt("1,-1,1,1,4,4,1,4,1"),
                    {"gt.txt: line 2", "class_id must be -1 or in [1, 3], got '4'"}, one);
  expect_load_error("mot_flag", write_mot, f, gt("1,-1,1,1,4,4,0.5,1,1"),
                    {"gt.txt: line 2", "not_ignored must be 0 or 1, got '0.5'"}, one);
  expect_load_error("mot_vis", write_mot, f, gt("1,-1,1,1,4,4,1,1,1.5"),
                    {"gt.txt: line 2", "visibility must be in [0, 1], got '1.5'"}, one);
  expect_load_error("mot_w", write_mot, f, gt("1,-1,1,1,4e999,4,1,1,1"),
                    {"gt.txt: line 2", "w must be a finite number, got '4e999'"}, one);
  expect_load_error("mot_frame_image", write_mot, f, gt("9,-1,1,1,4,4,1,1,1"),
                    {"gt.txt", "image id 9", "'000009.jpg' not found"}, one);
  expect_load_error(
      "mot_labels", write_mot, f, [](const fs::path& r) { write_file(r / "gt" / "labels.txt", "a\n\nb\na"); },
      {"labels.txt: line 4", "duplicate label name 'a'"}, one);
}

TEST(FormatsMalformed, Kitti) {
  const auto dir = temp_dir("kitti_bad");
  const std::string tail = " -1 -1 -1 -1000 -1000 -1000 -10";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"Car 0 0 -10 1 2 11 12 -1 -1 -1 -1000 -1000 -1000", {"a.txt: line 1", "15 fields (16 with a score), got 14"}},
      {"Car 0 0 -10 1 x 11 12" + tail, {"a.txt: line 1", "top must be a finite number, got 'x'"}},
      {"Car 0 0 -10 1 2 11 nan" + tail, {"a.txt: line 1", "bottom must be a finite number, got 'nan'"}},
      {"Car 0 0 -10 11 2 1 12" + tail, {"a.txt: line 1", "box right/bottom '1'/'12' is left of or above"}},
  };
  for (const auto& [line, pieces] : cases) {
    write_file(dir / "training" / "label_2" / "a.txt", line + "\n");
    expect_error([&] { load_format(dir, DatasetFormat::kitti); }, pieces);
  }
}

TEST(FormatsMalformed, TfRecord) {
  const auto f = DatasetFormat::tfrecord;
  auto record = [](std::vector<std::pair<std::string, std::string>> extra) {
    return [extra](const fs::path& r) {
      SImage im{"x", 64, 32, {}};
      std::vector<std::pair<std::string, std::string>> feats = {{"image/filename", bytes_feature({"x.png"})},
                                                                {"image/encoded", bytes_feature({png_bytes(im)})}};
      feats.insert(feats.end(), extra.begin(), extra.end());
      write_file(r / "Train.tfrecord", framed(example(feats)));
    };
  };
  auto boxes = [](size_t n) {
    std::vector<float> v(n, 0.5f);
    return std::vector<std::pair<std::string, std::string>>{{"image/object/bbox/xmin", float_feature(v)},
                                                            {"image/object/bbox/ymin", float_feature(v)},
                                                            {"image/object/bbox/xmax", float_feature(v)},
                                                            {"image/object/bbox/ymax", float_feature({0.5f})}};
  };
  auto with = [&](std::vector<std::pair<std::string, std::string>> a,
                  std::vector<std::pair<std::string, std::string>> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  expect_load_error("tf_label", write_tfrecord, f,
                    record(with(boxes(1), {{"image/object/class/label", int_feature({7})}})),
                    {"Train.tfrecord: record 0: object 0: image/object/class/label 7 is not in label_map.pbtxt"});
  expect_load_error("tf_text", write_tfrecord, f,
                    record(with(boxes(1), {{"image/object/class/label", int_feature({1})},
                                           {"image/object/class/text", bytes_feature({"dog"})}})),
                    {"Train.tfrecord: record 0: object 0: image/object/class/text 'dog' is not label 1's name 'cat'"});
  expect_load_error("tf_lengths", write_tfrecord, f,
                    record(with(boxes(2), {{"image/object/class/label", int_feature({1, 1})}})),
                    {"Train.tfrecord: record 0: image/object/bbox/ymax has 1 values"});
  expect_load_error("tf_no_label", write_tfrecord, f, record(boxes(1)),
                    {"record 0: image/object/class/label and class/text must give one label per box"});
  expect_load_error("tf_type", write_tfrecord, f, record({{"image/width", bytes_feature({"64"})}}),
                    {"record 0: image/width has the wrong list type"});
  expect_load_error("tf_width", write_tfrecord, f,
                    record({{"image/width", int_feature({-3})}, {"image/height", int_feature({4})}}),
                    {"record 0: image/width must be one positive integer, got -3"});
  expect_load_error("tf_size", write_tfrecord, f,
                    record({{"image/width", int_feature({63})}, {"image/height", int_feature({32})}}),
                    {"Train.tfrecord: record 0: image id 1", "declared 63x32 but the file header says 64x32"});
  expect_load_error("tf_proto", write_tfrecord, f,
                    [](const fs::path& r) { write_file(r / "Train.tfrecord", framed("\x0a\x05\x0a")); },
                    {"Train.tfrecord: record 0: not a valid tf.train.Example: truncated or malformed protobuf field"});
  // 10 million empty bytes values in a 20 MB record (~0.9 GB once parsed): refused before parsing.
  const std::string hostile = example({{"image/filename", empty_bytes_values(10000000)}});
  const uint64_t limit = 8 * hostile.size() + (uint64_t{16} << 20);
  expect_load_error("tf_values", write_tfrecord, f,
                    [&](const fs::path& r) { write_file(r / "Train.tfrecord", framed(hostile)); },
                    {"Train.tfrecord: record 0: tf.train.Example of " + std::to_string(hostile.size()) +
                         " bytes declares 10000001 values (entries 1, bytes values 10000000, numbers 0)",
                     "more than " + std::to_string(limit) + " (8 per record byte + 16 MiB)"});
  expect_load_error("tf_crc", write_tfrecord, f,
                    [](const fs::path& r) {
                      std::string bytes = read_file(r / "Validation.tfrecord");
                      bytes[20] ^= 0x40;
                      write_file(r / "Validation.tfrecord", bytes);
                    },
                    {"Validation.tfrecord: record 0 at byte 0: the data's CRC does not match"});
  expect_load_error("tf_map", write_tfrecord, f,
                    [](const fs::path& r) {
                      write_file(r / "label_map.pbtxt", "item {\n id: 1\n name: 'a'\n}\nitem {\n id: 2\n}\n");
                    },
                    {"label_map.pbtxt: line 5: item id 2 has no name"});
  const auto dir = temp_dir("tf_no_extract");
  write_tfrecord(make_spec({Kind::box}), dir);
  expect_error([&] { load_format(dir, f); },
               {"Train.tfrecord: record 0: image/encoded holds the image: an extraction folder is needed"});
}

TEST(FormatsMalformed, LabelMe) {
  const auto f = DatasetFormat::labelme;
  const fs::path xml = fs::path("Train") / "img000001.xml";
  expect_load_error("lm_name", write_labelme, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<name>dog</name>", ""); },
                    {"img000001.xml: line 1", "object 1: <object> has no <name>"});
  expect_load_error("lm_x", write_labelme, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<x>2.00</x>", "<x>2,0</x>"); },
                    {"img000001.xml: line 1", "object 0: pt.x must be a number, got '2,0'"});
  expect_load_error(
      "lm_points", write_labelme, f,
      [&](const fs::path& r) {
        replace_in(r / xml,
                   "<pt><x>2.00</x><y>1.00</y></pt><pt><x>8.00</x><y>1.00</y></pt><pt><x>8.00</x><y>5.00</y></pt>", "");
      },
      {"img000001.xml: line 1", "object 0: polygon has 1 points, at least 2 needed"});
  expect_load_error("lm_size", write_labelme, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<nrows>32</nrows>", "<nrows>-1</nrows>"); },
                    {"img000001.xml: line 1", "imagesize.nrows must be a positive integer, got '-1'"});
  expect_load_error("lm_shape", write_labelme, f,
                    [&](const fs::path& r) {
                      replace_in(r / xml, "<polygon>", "<poly>");
                      replace_in(r / xml, "</polygon>", "</poly>");
                    },
                    {"img000001.xml: line 1", "object 0: object has neither <polygon> nor <segm>"});
  expect_load_error("lm_root", write_labelme, f, [&](const fs::path& r) { write_file(r / xml, "<other/>"); },
                    {"img000001.xml: line 1", "root element is <other>, expected <annotation>"});
  expect_load_error("lm_size_mismatch", write_labelme, f,
                    [&](const fs::path& r) { replace_in(r / xml, "<ncols>64</ncols>", "<ncols>65</ncols>"); },
                    {"img000001.xml: image id 1", "declared 65x32 but the file header says 64x32"});
}

TEST(FormatsMalformed, CvatXml) {
  const auto f = DatasetFormat::cvat;
  const std::string x = "annotations.xml";
  expect_load_error("cvat_label", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, "<box label=\"dog\"", "<box label=\"cow\""); },
                    {"annotations.xml: line 10", "image 'img000001.png': box.label 'cow' is not a label of the meta"});
  expect_load_error(
      "cvat_points", write_cvat, f,
      [&](const fs::path& r) { replace_in(r / x, "source=\"manual\" points=\"", "source=\"manual\" points=\"1;"); },
      {"annotations.xml: line ", "polygon.points must be 'x,y;x,y;...', got '1;"});
  expect_load_error("cvat_xtl", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, "xtl=\"2.00\"", "xtl=\"\""); },
                    {"annotations.xml: line 7", "image 'img000001.png': box.xtl must be a number, got ''"});
  expect_load_error("cvat_rle", write_cvat, f, [&](const fs::path& r) { replace_in(r / x, "rle=\"0, ", "rle=\"1, "); },
                    {"annotations.xml: line ", "mask.rle: rle count 1 is"});
  expect_load_error("cvat_id", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, "<image id=\"1\"", "<image id=\"0\""); },
                    {"annotations.xml: line 18", "image id 0 appears twice in subset 'Train'"});
  expect_load_error(
      "cvat_size", write_cvat, f,
      [&](const fs::path& r) { replace_in(r / x, "width=\"64\" height=\"32\"", "width=\"64\" height=\"0\""); },
      {"annotations.xml: line 6", "image 'img000001.png': width/height must be positive, got 64x0"});
  expect_load_error("cvat_name", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, " name=\"img000001.png\"", ""); },
                    {"annotations.xml: line 6", "image '': <image> has no attribute 'name'"});
  expect_load_error("cvat_meta", write_cvat, f, [&](const fs::path& r) { replace_in(r / x, "<project>", "<thing>"); },
                    {"annotations.xml: line ", "end tag </project> does not match the open element"});
  expect_load_error("cvat_truncated", write_cvat, f,
                    [&](const fs::path& r) {
                      const std::string text = read_file(r / x);
                      write_file(r / x, text.substr(0, text.size() / 2));
                    },
                    {"annotations.xml: line "});
  expect_load_error("cvat_entity", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, "<box label=\"dog\"", "<box label=\"&dog;\""); },
                    {"annotations.xml: line 10", "unknown entity &dog;"});
  expect_load_error("cvat_xml", write_cvat, f,
                    [&](const fs::path& r) { replace_in(r / x, "</annotations>", "</annotation>"); },
                    {"annotations.xml: line ", "end tag </annotation> does not match the open element"});
}

TEST(FormatsMalformed, Datumaro) {
  const auto f = DatasetFormat::datumaro;
  const fs::path train = fs::path("annotations") / "Train.json";
  auto edit = [&](std::function<void(json&)> change) {
    return [change, train](const fs::path& r) {
      json doc = json::parse(read_file(r / train));
      change(doc);
      write_file(r / train, doc.dump());
    };
  };
  expect_load_error(
      "dm_label", write_datumaro, f, edit([](json& d) { d["items"][0]["annotations"][1]["label_id"] = 3; }),
      {"Train.json: item 'img000001': annotations[1]", "'label_id' must be an integer in [0, 3) or null, got 3"});
  expect_load_error(
      "dm_bbox", write_datumaro, f, edit([](json& d) {
        d["items"][0]["annotations"][0]["bbox"] = {1, 2, 3};
      }),
      {"Train.json: item 'img000001': annotations[0]", "'bbox' must be [x, y, width, height], got [1,2,3]"});
  expect_load_error("dm_points", write_datumaro, f, edit([](json& d) {
                      d["items"][2]["annotations"][2]["points"] = {1, 2, 3, 4, 5};
                    }),
                    {"Train.json: item 'img000003': annotations[2]", "'points' must hold at least 3 x, y pairs"});
  expect_load_error("dm_rle", write_datumaro, f,
                    edit([](json& d) { d["items"][2]["annotations"][0]["rle"]["counts"] = "~~"; }),
                    {"Train.json: item 'img000003': annotations[0]", "rle: "});
  expect_load_error("dm_labels", write_datumaro, f,
                    edit([](json& d) { d["categories"]["label"]["labels"][0]["name"] = "lion"; }),
                    {"Validation.json: categories.label", "the label list differs from Train.json's"});
  expect_load_error("dm_size", write_datumaro, f, edit([](json& d) {
                      d["items"][0]["image"]["size"] = {32.5, 64};
                    }),
                    {"Train.json: item 'img000001'.image", "'size' must be [height, width] positive integers"});
  expect_load_error("dm_json", write_datumaro, f, [&](const fs::path& r) { write_file(r / train, "{\"items\": [}"); },
                    {"Train.json: not valid JSON"});
  expect_load_error("dm_type", write_datumaro, f, edit([](json& d) { d["items"][0]["annotations"][0]["type"] = 3; }),
                    {"Train.json: item 'img000001': annotations[0]", "'type' must be a string, got 3"});
}

TEST(FormatsMalformed, MissingImagesAreErrorsOrSkipped) {
  const auto dir = temp_dir("missing_images");
  write_voc(make_spec({Kind::box}), dir);
  fs::remove(dir / "JPEGImages" / "img000002.png");
  expect_error([&] { load_format(dir, DatasetFormat::voc); },
               {"img000002.xml: image id 2: image file 'img000002.png' not found", "--skip_bad_images"});
  FormatLoadOptions options;
  options.coco.skip_bad_images = true;
  const auto splits = load_format(dir, DatasetFormat::voc, options);
  EXPECT_EQ(splits.train.images.size(), 4u);
  EXPECT_EQ(splits.train.summary.skipped_images, 1);
  ASSERT_EQ(splits.train.summary.skipped.size(), 1u);
  EXPECT_NE(splits.train.summary.skipped[0].find("img000002"), std::string::npos);
}

TEST(FormatsMalformed, NegativeBoxesAreBadImages) {
  const auto dir = temp_dir("negative_box");
  write_cvat(make_spec({Kind::box}), dir);
  replace_in(dir / "annotations.xml", "xbr=\"8.00\"", "xbr=\"1.00\"");
  expect_error([&] { load_format(dir, DatasetFormat::cvat); },
               {"annotations.xml: line 6: image id 0: image 'img000001.png' <box> (line 7): box has a negative width "
                "or height: [2, 1, -1, 4]"});
}

// ---------------------------------------------------------------------------------------------
// Detection and names.

TEST(FormatsDetect, EachFormatAndAmbiguity) {
  const auto dir = temp_dir("detect");
  const Spec spec = make_spec({Kind::box});
  const std::vector<std::pair<DatasetFormat, std::function<void(const Spec&, const fs::path&)>>> writers = {
      {DatasetFormat::coco, write_coco},
      {DatasetFormat::yolo, write_yolo},
      {DatasetFormat::voc, write_voc},
      {DatasetFormat::mot, write_mot},
      {DatasetFormat::tfrecord, write_tfrecord},
      {DatasetFormat::labelme, write_labelme},
      {DatasetFormat::cvat, write_cvat},
      {DatasetFormat::datumaro, write_datumaro},
      {DatasetFormat::ultralytics, write_ultralytics}};
  for (const auto& [format, write] : writers) {
    const fs::path root = dir / format_name(format);
    write(spec, root);
    const auto d = detect_format(root);
    EXPECT_EQ(d.format, format) << format_name(format) << ": " << d.reason;
    EXPECT_FALSE(d.reason.empty());
  }
  write_yolo(spec, dir / "coco");  // COCO and YOLO in one folder
  expect_error([&] { detect_format(dir / "coco"); },
               {"holds several dataset formats", "coco: annotations/instances_Train.json (COCO)",
                "yolo: obj.data (YOLO 1.1)", "--dataset_format"});
  fs::create_directories(dir / "empty");
  expect_error([&] { detect_format(dir / "empty"); }, {"empty: no dataset format recognised"});
}

TEST(FormatsDetect, NamesFromOnepanelAndCvat) {
  EXPECT_EQ(parse_format_name("cvat_yolo"), DatasetFormat::yolo);
  EXPECT_EQ(parse_format_name("PASCAL VOC 1.1"), DatasetFormat::voc);
  EXPECT_EQ(parse_format_name("cvat_label_me"), DatasetFormat::labelme);
  EXPECT_EQ(parse_format_name("CVAT for images 1.1"), DatasetFormat::cvat);
  EXPECT_EQ(parse_format_name("datumaro_project"), DatasetFormat::datumaro);
  EXPECT_EQ(parse_format_name("cvat_tfrecord"), DatasetFormat::tfrecord);
  EXPECT_EQ(parse_format_name("MOT 1.1"), DatasetFormat::mot);
  EXPECT_EQ(parse_format_name("coco"), DatasetFormat::coco);
  EXPECT_EQ(parse_format_name("Ultralytics YOLO Detection 1.0"), DatasetFormat::ultralytics);
  EXPECT_EQ(parse_format_name("ultralytics yolo oriented bounding boxes 1.0"), DatasetFormat::ultralytics);
  EXPECT_EQ(parse_format_name("Ultralytics YOLO Pose 1.0"), DatasetFormat::ultralytics);
  EXPECT_EQ(parse_format_name("yolov8_segmentation"), DatasetFormat::ultralytics);
  EXPECT_EQ(parse_format_name("ultralytics"), DatasetFormat::ultralytics);
  EXPECT_STREQ(format_name(DatasetFormat::ultralytics), "ultralytics");
  EXPECT_FALSE(parse_format_name("auto"));
  EXPECT_EQ(parse_format_name("KITTI 1.0"), DatasetFormat::kitti);
  EXPECT_STREQ(format_name(DatasetFormat::kitti), "kitti");
  EXPECT_EQ(parse_format_name("Open Images V6 1.0"), DatasetFormat::open_images);
  EXPECT_FALSE(parse_format_name("imagenet"));
}

TEST(FormatsDetect, UltralyticsBesideYolo11) {
  const auto dir = temp_dir("detect_ultralytics");
  const Spec spec = make_spec({Kind::box});
  write_yolo(spec, dir / "yolo");
  write_file(dir / "yolo" / "data.yaml", "names: [a]\n");  // a data.yaml without labels/: still YOLO 1.1
  EXPECT_EQ(detect_format(dir / "yolo").format, DatasetFormat::yolo);
  write_ultralytics(spec, dir / "yolo");  // both layouts in one folder
  expect_error([&] { detect_format(dir / "yolo"); }, {"holds several dataset formats", "yolo: obj.data (YOLO 1.1)",
                                                      "ultralytics: data.yaml and labels/ (Ultralytics YOLO)"});
}

TEST(FormatsDetect, SubsetsMapToTrainAndVal) {
  RawExport data;
  data.format = "x";
  auto names = [&](std::vector<std::string> n) {
    data.subsets.clear();
    for (const auto& s : n) data.subsets.push_back({s, "f", {}});
    return choose_splits(data, "root");
  };
  auto c = names({"valid", "train"});
  EXPECT_EQ(c.train, 1u);
  EXPECT_EQ(c.val, 0u);
  c = names({"Validation", "default"});
  EXPECT_EQ(c.train, 1u);
  c = names({"test"});
  EXPECT_EQ(c.train, 0u);
  EXPECT_FALSE(c.val);
  expect_error(
      [&] {
        names({"test", "Validation"});
      },
      {"root: x export: no subset to train on among 'test', 'Validation'"});
}

// ---------------------------------------------------------------------------------------------
// Real exports (CVAT's and Datumaro's test assets; ../shared/data/real-exports/INDEX.md).

namespace {

void expect_counts(const dd::CocoDataset& d, size_t images, int64_t boxes) {
  EXPECT_EQ(d.images.size(), images) << d.annotation_file;
  EXPECT_EQ(d.summary.boxes, boxes) << d.annotation_file;
}

FormatSplits load_real(const std::string& rel, DatasetFormat format, FormatLoadOptions options = {}) {
  const fs::path root = real_exports() / rel;
  const auto detected = detect_format(root);
  EXPECT_EQ(detected.format, format) << rel << ": " << detected.reason;
  if (options.extract_dir.empty()) options.extract_dir = temp_dir("real_extract");
  return load_format(root, format, options);
}

}  // namespace

TEST(FormatsOptionalFixtures, Yolo) {
  REQUIRE_REAL_EXPORTS();
  for (const char* rel : {"datumaro/yolo_dataset/yolo", "datumaro-openvino/yolo_dataset/strict"}) {
    SCOPED_TRACE(rel);
    const auto s = load_real(rel, DatasetFormat::yolo);
    expect_counts(s.train, 1, 2);
    EXPECT_FALSE(s.val);
    ASSERT_EQ(s.train.categories.size(), 10u);
    const auto& o = s.train.images[0].objects;
    ASSERT_EQ(o.size(), 2u);
    EXPECT_EQ(o[0].category_id, 3);  // class 2 = label_2
    EXPECT_EQ(s.train.categories[2].name, "label_2");
    // "2 0.133333 0.300000 0.266667 0.200000" on the 10x5 image... checked against its own header
    const double w = double(s.train.images[0].width), h = double(s.train.images[0].height);
    EXPECT_NEAR(o[0].bbox[0], (0.133333 - 0.266667 / 2) * w, 1e-9);
    EXPECT_NEAR(o[0].bbox[3], 0.2 * h, 1e-9);
  }
}

TEST(FormatsOptionalFixtures, Ultralytics) {
  REQUIRE_REAL_EXPORTS();
  for (const char* name :
       {"yolov8_detection", "yolov8_detection_with_list_of_imgs", "yolov8_detection_with_list_of_names",
        "yolov8_detection_with_subset_txt", "yolov8_segmentation", "yolov8_oriented_boxes"}) {
    SCOPED_TRACE(name);
    const std::string rel = std::string("datumaro/yolo_dataset/") + name;
    const auto s = load_real(rel, DatasetFormat::ultralytics);
    expect_counts(s.train, 1, 2);
    EXPECT_FALSE(s.val);
    ASSERT_EQ(s.train.categories.size(), 10u);
    EXPECT_EQ(s.train.categories[2].name, "label_2");
    const auto& o = s.train.images[0].objects;
    ASSERT_EQ(o.size(), 2u);
    EXPECT_EQ(o[0].category_id, 3);  // class 2
    const double w = double(s.train.images[0].width), h = double(s.train.images[0].height);
    const std::string n = name;
    if (n == "yolov8_segmentation") {  // "2 0.1 0.1 0.4 0.1 0.4 0.5": the triangle's bounding box
      EXPECT_NEAR(o[0].bbox[0], 0.1 * w, 1e-9);
      EXPECT_NEAR(o[0].bbox[3], 0.4 * h, 1e-9);
    } else if (n == "yolov8_oriented_boxes") {  // the enclosing axis-aligned box of the 4 corners
      EXPECT_NEAR(o[0].bbox[0], 0.013397 * w, 1e-9);
      EXPECT_NEAR(o[0].bbox[2], (0.319936 - 0.013397) * w, 1e-9);
      bool said = false;
      for (const auto& line : s.train.summary.warnings) said |= line.find("oriented boxes") != std::string::npos;
      EXPECT_TRUE(said);
    } else {  // "2 0.133333 0.300000 0.266667 0.200000"
      EXPECT_NEAR(o[0].bbox[0], (0.133333 - 0.266667 / 2) * w, 1e-9);
      EXPECT_NEAR(o[0].bbox[3], 0.2 * h, 1e-9);
    }
  }
  for (const char* name : {"yolov8_pose", "yolov8_pose_two_values_per_point"}) {  // kpt_shape [3, 3] and [3, 2]
    SCOPED_TRACE(name);
    const auto s = load_real(std::string("datumaro/yolo_dataset/") + name, DatasetFormat::ultralytics);
    expect_counts(s.train, 1, 1);
    ASSERT_EQ(s.train.categories.size(), 1u);
    EXPECT_NEAR(s.train.images[0].objects.at(0).bbox[2], 0.266667 * double(s.train.images[0].width), 1e-9);
  }
  // Classification (folders of images per label) is no detection format.
  expect_error([] { detect_format(real_exports() / "datumaro/yolo_dataset/yolov8_classification"); },
               {"no dataset format recognised"});
}

TEST(FormatsOptionalFixtures, Voc) {
  REQUIRE_REAL_EXPORTS();
  auto s = load_real("datumaro/voc_dataset/voc_dataset1", DatasetFormat::voc);
  EXPECT_EQ(s.train_subset, "train");
  expect_counts(s.train, 1, 2);
  EXPECT_EQ(s.train.categories.size(), 20u);  // no labelmap.txt: VOC's classes
  EXPECT_EQ(s.train.categories[s.train.images[0].objects[0].category_id - 1].name, "cat");
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{1, 2, 2, 2}));
  EXPECT_EQ(s.train.images[0].width, 20);
  // SegmentationObject/2007_000001.png paints all 20x10 pixels in instance 1's colour: the cat's mask.
  ASSERT_TRUE(s.train.images[0].objects[0].segmentation.rle.has_value());
  EXPECT_EQ(dd::area(*s.train.images[0].objects[0].segmentation.rle), 200u);
  EXPECT_FALSE(s.train.images[0].objects[1].segmentation.rle.has_value());
  s = load_real("datumaro/voc_dataset/voc_dataset3", DatasetFormat::voc);  // "# a comment" in the list
  expect_counts(s.train, 1, 1);
  // voc_dataset2 holds annotations without images: every image is missing.
  const fs::path root2 = real_exports() / "datumaro/voc_dataset/voc_dataset2";
  expect_error([&] { load_format(root2, DatasetFormat::voc); }, {"@.xml: image id 1: image file '@.jpg' not found"});
  const auto raw = read_voc(root2);
  ASSERT_EQ(raw.subsets.size(), 1u);
  EXPECT_EQ(raw.subsets[0].name, "trainval");
  EXPECT_EQ(raw.subsets[0].images.size(), 5u);
  EXPECT_EQ(raw.labels.size(), 21u);  // its labelmap without background, with 'ignored'
}

TEST(FormatsOptionalFixtures, Mot) {
  REQUIRE_REAL_EXPORTS();
  const auto s = load_real("datumaro/mot_dataset/mot_seq", DatasetFormat::mot);
  expect_counts(s.train, 1, 1);
  EXPECT_EQ(s.train.images[0].id, 1);
  EXPECT_EQ(s.train.categories[s.train.images[0].objects[0].category_id - 1].name, "label_2");
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{0, 4, 4, 8}));
  const fs::path root = real_exports() / "datumaro/mot_dataset/mot_seq_with_seqinfo";  // no img1/
  EXPECT_EQ(detect_format(root).format, DatasetFormat::mot);
  expect_error([&] { load_format(root, DatasetFormat::mot); },
               {"gt.txt: image id 1: image file '000001.jpg' not found"});
}

TEST(FormatsOptionalFixtures, TfRecord) {
  REQUIRE_REAL_EXPORTS();
  const auto s = load_real("datumaro/tf_detection_api_dataset", DatasetFormat::tfrecord);
  EXPECT_EQ(s.train_subset, "train");
  expect_counts(s.train, 1, 2);  // the third object has label 0 and no text: unlabelled
  ASSERT_TRUE(s.val);
  expect_counts(*s.val, 1, 1);
  bool warned = false;
  for (const auto& w : s.train.summary.warnings) warned |= w.find("1 objects without a label") != std::string::npos;
  EXPECT_TRUE(warned);
  const auto raw = read_tfrecord(real_exports() / "datumaro/tf_detection_api_dataset", temp_dir("tf_raw"));
  ASSERT_EQ(raw.subsets.size(), 3u);
  EXPECT_EQ(raw.subsets[0].name, "test");
  EXPECT_TRUE(raw.subsets[0].images[0].objects.empty());
  // Roboflow's records hold no image bytes and its folder no images.
  for (const char* sub : {"train", "val"}) {
    const fs::path root = real_exports() / "datumaro-openvino/roboflow_dataset/tfrecord" / sub;
    EXPECT_EQ(detect_format(root).format, DatasetFormat::tfrecord);
    expect_error([&] { load_format(root, DatasetFormat::tfrecord); },
                 {"record 0: image id 1: image file '", "not found"});
  }
}

TEST(FormatsOptionalFixtures, LabelMe) {
  REQUIRE_REAL_EXPORTS();
  for (const char* rel : {"datumaro/labelme_dataset", "datumaro-openvino/labelme_dataset"}) {
    SCOPED_TRACE(rel);
    const auto s = load_real(rel, DatasetFormat::labelme);
    expect_counts(s.train, 1, 5);  // 4 polygons and a bounding_box; 2 masks are crowd RLEs (--crowd decides)
    EXPECT_EQ(s.train.summary.crowd_dropped, 2);
    // Masks/img1_mask_1.png: 10 pixels (alpha > 0) in x 58..62, y 67..68; its <box> says y from 66.
    const auto& plate = s.train.images[0].objects[1];
    ASSERT_TRUE(plate.segmentation.rle.has_value());
    EXPECT_EQ(plate.bbox, (std::array<double, 4>{58, 67, 5, 2}));
    EXPECT_EQ(plate.area, 10);
    EXPECT_EQ(s.train.images[0].objects[0].segmentation.polygons.size(), 1u);
    EXPECT_EQ(s.train.images[0].width, 102);
    EXPECT_EQ(s.train.images[0].height, 77);
    ASSERT_EQ(s.train.categories.size(), 7u);
    EXPECT_EQ(s.train.categories[0].name, "window");
    EXPECT_EQ(s.train.categories[1].name, "license plate");
    EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{43, 34, 2, 3}));
  }
}

TEST(FormatsOptionalFixtures, CvatXml) {
  REQUIRE_REAL_EXPORTS();
  auto s = load_real("datumaro/cvat_dataset/for_images", DatasetFormat::cvat);
  expect_counts(s.train, 2, 1);  // one box; the polygon has label ""; polylines, points and skeletons are not boxes
  EXPECT_EQ(s.train.categories.size(), 7u);
  s = load_real("datumaro-openvino/cvat_dataset/for_images/export_task", DatasetFormat::cvat);
  expect_counts(s.train, 2, 1);
  s = load_real("datumaro-openvino/cvat_dataset/for_images/export_project", DatasetFormat::cvat);
  EXPECT_EQ(s.train_subset, "Train");
  expect_counts(s.train, 2, 2);
  ASSERT_TRUE(s.val);
  EXPECT_EQ(*s.val_subset, "Validation");
  expect_counts(*s.val, 2, 2);
  EXPECT_NE(s.train.images[0].path.string().find("images/Train/img0.jpg"), std::string::npos);
  s = load_real("datumaro-openvino/cvat_dataset/for_video", DatasetFormat::cvat);
  expect_counts(s.train, 1, 1);  // the box track is outside on frames 13 and 16
  EXPECT_EQ(s.train.images[0].id, 10);
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{3, 4, 7, 1}));
  EXPECT_EQ(s.train.categories[s.train.images[0].objects[0].category_id - 1].name, "II");
}

// Roboflow's layouts as Datumaro's test assets hold them.
TEST(FormatsOptionalFixtures, Roboflow) {
  REQUIRE_REAL_EXPORTS();
  const std::string rf = "datumaro-openvino/roboflow_dataset/";
  auto s = load_real(rf + "coco", DatasetFormat::coco);
  EXPECT_EQ(s.train_subset, "train");
  expect_counts(s.train, 2, 2);
  ASSERT_TRUE(s.val);
  expect_counts(*s.val, 1, 1);  // and one iscrowd region
  s = load_real(rf + "voc", DatasetFormat::voc);
  expect_counts(s.train, 2, 2);
  ASSERT_TRUE(s.val);
  expect_counts(*s.val, 1, 2);
  ASSERT_EQ(s.train.categories.size(), 2u);
  EXPECT_EQ(s.train.categories[0].name, "label_0");
  // CreateML's x, y are the box's centre: Datumaro's asset, written as if they were its corner, gives
  // the COCO asset's box [2, 1, 3, 1] shifted by half its size.
  s = load_real(rf + "createml", DatasetFormat::createml);
  expect_counts(s.train, 2, 2);
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{0.5, 0.5, 3, 1}));
  EXPECT_EQ(s.train.categories[1].name, "label_1");
  // The YOLO asset's data.yaml names ../valid/images where its folder is val/: one line says so.
  EXPECT_EQ(detect_format(real_exports() / (rf + "yolo")).format, DatasetFormat::ultralytics);
  expect_error([&] { load_format(real_exports() / (rf + "yolo"), DatasetFormat::ultralytics); },
               {"data.yaml: line 2: val: '../valid/images' is neither a folder, a list file nor an image"});
  // Roboflow's TFRecord sample holds no image bytes and its folders no images.
  EXPECT_EQ(detect_format(real_exports() / (rf + "tfrecord")).format, DatasetFormat::tfrecord);
  expect_error([&] { load_format(real_exports() / (rf + "tfrecord"), DatasetFormat::tfrecord); },
               {"train.tfrecord: record 0: image id 1: image file '", "not found"});
  // The multi-label classification CSV has no boxes: detection says so.
  expect_error([&] { detect_format(real_exports() / (rf + "multiclass")); },
               {"no dataset format recognised", "train/_classes.csv is Roboflow's multi-label classification export"});
}

TEST(FormatsOptionalFixtures, Kitti) {
  REQUIRE_REAL_EXPORTS();
  const auto s = load_real("datumaro/kitti_dataset/kitti_detection", DatasetFormat::kitti);
  EXPECT_EQ(s.train_subset, "training");
  expect_counts(s.train, 2, 5);
  ASSERT_EQ(s.train.categories.size(), 2u);
  EXPECT_EQ(s.train.categories[0].name, "Truck");
  EXPECT_EQ(s.train.categories[1].name, "Van");
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{0, 1, 2, 2}));
}

TEST(FormatsOptionalFixtures, OtherLayoutsAreNotMistaken) {
  REQUIRE_REAL_EXPORTS();
  // COCO exports stay COCO; the loose YOLO variants (no obj.data) are not YOLO 1.1.
  EXPECT_EQ(detect_format(real_exports() / "datumaro/coco_dataset/coco_instances").format, DatasetFormat::coco);
  EXPECT_EQ(detect_format(real_exports() / "detr/sample_data").format, DatasetFormat::coco);
  expect_error([] { detect_format(real_exports() / "datumaro-openvino/yolo_dataset/labels"); },
               {"no dataset format recognised"});
  // Roboflow's VOC keeps the XML beside the images, without ImageSets: not VOC 1.1, nor LabelMe.
  expect_error([] { detect_format(real_exports() / "datumaro-openvino/roboflow_dataset/voc/train"); },
               {"no dataset format recognised"});
}

// ---------------------------------------------------------------------------------------------
// Decisions on flags, on generated exports.

TEST(FormatsDecisions, CvatTracksTakeVisibleFramesOnly) {
  const auto dir = temp_dir("cvat_tracks");
  SImage frame0{"frame_000000", 32, 32, {}}, frame1{"frame_000001", 32, 32, {}};
  write_image(dir / "images" / frame0.file(), frame0);
  write_image(dir / "images" / frame1.file(), frame1);
  write_file(
      dir / "annotations.xml",
      "<annotations><version>1.1</version><meta><task><labels><label><name>car</name></label></labels>"
      "<original_size><width>32</width><height>32</height></original_size></task></meta>"
      "<track id=\"0\" label=\"car\"><box frame=\"0\" outside=\"0\" occluded=\"1\" keyframe=\"1\" xtl=\"1\" ytl=\"2\" "
      "xbr=\"5\" ybr=\"6\"/><box frame=\"1\" outside=\"1\" occluded=\"0\" keyframe=\"1\" xtl=\"1\" ytl=\"2\" xbr=\"5\" "
      "ybr=\"6\"/></track></annotations>");
  const auto s = load_format(dir, DatasetFormat::cvat);
  ASSERT_EQ(s.train.images.size(), 1u);
  EXPECT_EQ(s.train.images[0].id, 0);
  EXPECT_EQ(s.train.images[0].file_name, "frame_000000.png");
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{1, 2, 4, 4}));
  EXPECT_FALSE(s.train.images[0].objects[0].iscrowd);  // occluded objects train
}

TEST(FormatsDecisions, UltralyticsImagesWithoutLabelFilesShowNoObjects) {
  const auto dir = temp_dir("ultralytics_no_labels");
  write_ultralytics(make_spec({Kind::box}), dir);
  fs::remove(dir / "labels" / "train" / "img000001.txt");
  const auto s = load_format(dir, DatasetFormat::ultralytics);
  ASSERT_EQ(s.train.images.size(), 5u);
  EXPECT_TRUE(s.train.images[0].objects.empty());
  bool said = false;
  for (const auto& line : s.train.summary.warnings)
    said |= line.find("1 images have no label file") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(FormatsDecisions, UltralyticsSubsetsAsListsNamesAsAList) {
  const auto dir = temp_dir("ultralytics_lists");
  write_ultralytics(make_spec({Kind::box}), dir);
  write_file(dir / "train.txt",
             "./images/train/img000001.png\ndata/images/train/img000002.png\nimages/train/img000003.png\n");
  write_file(dir / "data.yaml",
             "# written by hand\npath: .  # the root\ntrain: train.txt\nval:\n  - images/val/img000006.png\n"
             "  - 'images/val/img000007.png'\n\nnc: 3\nnames: ['cat', \"dog\", 'salt & pepper']\n"
             "kpt_shape_unused: [1, 2]\nroboflow:\n  workspace: w\n  version: 2\nflip_idx:\n  - 0\n  - 1\n");
  const auto s = load_format(dir, DatasetFormat::ultralytics);
  EXPECT_EQ(s.train.images.size(), 3u);
  ASSERT_TRUE(s.val);
  EXPECT_EQ(s.val->images.size(), 2u);
  ASSERT_EQ(s.train.categories.size(), 3u);
  EXPECT_EQ(s.train.categories[2].name, "salt & pepper");
  const auto y =
      parse_ultralytics_yaml("names:\n  1: b\n  0: \"a\"\nkpt_shape: [17, 3]\nflip_idx: [0, 2, 1]\n", "d.yaml");
  EXPECT_EQ(y.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(y.kpt_values, 51);
  EXPECT_EQ(parse_ultralytics_yaml("names: [a, 'it''s', \"q\\\"\"]\n", "d.yaml").names,
            (std::vector<std::string>{"a", "it's", "q\""}));
}

// Roboflow's layout: <subset>/images and <subset>/labels, data.yaml naming them as ../<subset>/images
// (Ultralytics retries such a path without its ../).
TEST(FormatsDecisions, UltralyticsRoboflowLayout) {
  const auto dir = temp_dir("ultralytics_roboflow");
  write_ultralytics(make_spec({Kind::box, Kind::polygon}), dir / "u");
  const fs::path root = dir / "roboflow";
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"train", "train"}, {"val", "valid"}}) {
    fs::create_directories(root / to);
    fs::rename(dir / "u" / "images" / from, root / to / "images");
    fs::rename(dir / "u" / "labels" / from, root / to / "labels");
  }
  write_file(root / "data.yaml", "train: ../train/images\nval: ../valid/images\n\nnc: 3\nnames: ['cat', 'dog', 'x']\n");
  const auto d = detect_format(root);
  EXPECT_EQ(d.format, DatasetFormat::ultralytics);
  EXPECT_EQ(d.reason, "data.yaml and train/labels/ (Ultralytics YOLO)");
  const auto s = load_format(root, DatasetFormat::ultralytics);
  EXPECT_EQ(s.train.images.size(), 5u);
  ASSERT_TRUE(s.val);
  EXPECT_EQ(s.val->images.size(), 2u);
  EXPECT_EQ(s.train.images[0].objects.size(), 3u);
}

TEST(FormatsDecisions, LabelMeDeletedObjectsAreLeftOut) {
  const auto dir = temp_dir("labelme_deleted");
  write_labelme(make_spec({Kind::box}, {"default"}), dir);
  const fs::path xml = dir / "default" / "000001.xml";
  replace_in(xml, "<deleted>0</deleted>", "<deleted>1</deleted>");
  const auto s = load_format(dir, DatasetFormat::labelme);
  EXPECT_EQ(s.train.images[0].objects.size(), 2u);
  EXPECT_EQ(s.train.categories.size(), 3u);  // cat still appears later
}

TEST(FormatsDecisions, DatumaroOutsideAndUnlabelled) {
  const auto dir = temp_dir("datumaro_flags");
  write_datumaro(make_spec({Kind::box}), dir);
  const fs::path file = dir / "annotations" / "Train.json";
  json doc = json::parse(read_file(file));
  doc["items"][0]["annotations"][0]["attributes"]["outside"] = true;
  doc["items"][0]["annotations"][1]["label_id"] = nullptr;
  write_file(file, doc.dump());
  const auto s = load_format(dir, DatasetFormat::datumaro);
  ASSERT_EQ(s.train.images[0].objects.size(), 1u);
  EXPECT_EQ(s.train.images[0].objects[0].category_id, 3);
  std::string warnings;
  for (const auto& w : s.train.summary.warnings) warnings += w + "\n";
  EXPECT_NE(warnings.find("1 annotations outside the frame"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("1 objects without a label"), std::string::npos) << warnings;
}

TEST(FormatsDecisions, TfRecordLabelsByTextOrUnlabelled) {
  const auto dir = temp_dir("tf_labels");
  const Spec spec = make_spec({Kind::box}, {"default"});
  write_file(dir / "label_map.pbtxt", label_map_text(spec));
  const SImage im{"a", 64, 32, {}};
  std::vector<float> v0{0.25f, 0.5f}, v1{0.5f, 0.75f};
  write_file(dir / "default.tfrecord", framed(example({{"image/filename", bytes_feature({"a.png"})},
                                                       {"image/encoded", bytes_feature({png_bytes(im)})},
                                                       {"image/object/bbox/xmin", float_feature(v0)},
                                                       {"image/object/bbox/ymin", float_feature(v0)},
                                                       {"image/object/bbox/xmax", float_feature(v1)},
                                                       {"image/object/bbox/ymax", float_feature(v1)},
                                                       {"image/object/class/text", bytes_feature({"dog", ""})}})));
  FormatLoadOptions options;
  options.extract_dir = dir / "extracted";
  const auto s = load_format(dir, DatasetFormat::tfrecord, options);
  EXPECT_EQ(s.train_subset, "default");
  ASSERT_EQ(s.train.images.size(), 1u);
  EXPECT_EQ(s.train.images[0].path, dir / "extracted" / "default" / "a.png");
  ASSERT_EQ(s.train.images[0].objects.size(), 1u);
  EXPECT_EQ(s.train.images[0].objects[0].category_id, 2);
  EXPECT_EQ(s.train.images[0].objects[0].bbox, (std::array<double, 4>{16, 8, 16, 8}));
}

TEST(FormatsDecisions, TfRecordSubsetNamesNeverBecomePaths) {
  // Measured before: "...tfrecord" made its subset "..", so its embedded images were written to the
  // extraction folder's parent ($TMPDIR itself) and left there.
  const auto dir = temp_dir("tf_dots");
  const Spec spec = make_spec({Kind::box}, {"default"});
  write_file(dir / "label_map.pbtxt", label_map_text(spec));
  const SImage im{"a", 64, 32, {}};
  write_file(dir / "...tfrecord", framed(example({{"image/filename", bytes_feature({"a.png"})},
                                                  {"image/encoded", bytes_feature({png_bytes(im)})}})));
  const auto extract = dir / "scratch" / "extracted";
  const auto raw = read_tfrecord(dir, extract);
  ASSERT_EQ(raw.subsets.size(), 1u);
  EXPECT_EQ(raw.subsets[0].name, "..");  // named as the file names it
  ASSERT_EQ(raw.subsets[0].images.size(), 1u);
  const auto path = raw.subsets[0].images[0].path;
  std::cout << "  image extracted to " << path << "\n";
  EXPECT_EQ(path, extract / ".subset0" / "a.png");
  EXPECT_TRUE(fs::is_regular_file(path));
  EXPECT_FALSE(fs::exists(dir / "scratch" / "a.png"));
}

TEST(FormatsDecisions, NamesFromTheExportStayInsideIt) {
  const auto dir = temp_dir("inside");
  EXPECT_EQ(join_inside(dir, "a/b.jpg"), dir / "a" / "b.jpg");
  EXPECT_EQ(join_inside(dir, "../../etc/passwd"), dir / "passwd");
  EXPECT_EQ(join_inside(dir, "/etc/passwd"), dir / "passwd");
  write_file(dir / "x.png", "");
  EXPECT_EQ(find_inside(dir, "/somewhere/else/x.png"), dir / "x.png");
  EXPECT_FALSE(find_inside(dir, "../x.png/.."));
}
