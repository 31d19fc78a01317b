// The COCO data pipeline: discovery, validation of real exports' quirks, transforms, loader.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/coco_eval.h"
#include "datasets/image_io.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "datasets/transforms.h"
#include "tests/fixtures.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace detr::datasets;
using nlohmann::json;

namespace {

// A fresh directory per test.
fs::path temp_dir(const std::string& name) { return detr::testing::scratch_dir("detr_test_", name); }

fs::path make_export(const std::string& name, int64_t images = 8) {
  auto dir = temp_dir(name);
  SyntheticExportOptions o;
  o.num_images = images;
  write_synthetic_cvat_export(dir, o);
  return dir;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}
void write_json(const fs::path& p, const json& j) {
  std::ofstream out(p);
  out << j.dump();
}

// Loads the export after `edit` changed its annotation file; returns the error text ("" if none).
std::string load_error(const fs::path& root, const std::function<void(json&)>& edit, bool skip = false) {
  const auto ann = root / "annotations" / "instances_default.json";
  auto j = read_json(ann);
  edit(j);
  write_json(ann, j);
  try {
    load_coco(discover_coco(root).train, {skip, false});
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace

TEST(CocoDiscovery, FindsCvatSubsetsAndUpstreamLayouts) {
  auto root = make_export("discover");
  auto layout = discover_coco(root);
  EXPECT_EQ(layout.kind, "cvat");
  EXPECT_EQ(layout.train.subset, "default");
  EXPECT_FALSE(layout.val.has_value());

  fs::rename(root / "annotations" / "instances_default.json", root / "annotations" / "instances_Train.json");
  fs::copy_file(root / "annotations" / "instances_Train.json", root / "annotations" / "instances_Validation.json");
  layout = discover_coco(root);
  EXPECT_EQ(layout.train.subset, "Train");
  ASSERT_TRUE(layout.val.has_value());
  EXPECT_EQ(layout.val->subset, "Validation");

  auto up = temp_dir("upstream");
  fs::create_directories(up / "annotations");
  fs::create_directories(up / "train2017");
  std::ofstream(up / "annotations" / "instances_train2017.json") << "{}";
  std::ofstream(up / "annotations" / "instances_val2017.json") << "{}";
  layout = discover_coco(up);
  EXPECT_EQ(layout.kind, "upstream");
  EXPECT_EQ(layout.train.image_dir, up / "train2017");
  EXPECT_EQ(layout.val->image_dir, up / "val2017");
}

TEST(CocoDiscovery, NothingFoundListsWhatWasLookedFor) {
  auto root = temp_dir("nothing");
  fs::create_directories(root / "annotations");
  std::ofstream(root / "annotations" / "labels.txt") << "x";
  try {
    discover_coco(root);
    FAIL();
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("instances_default.json"), std::string::npos) << m;
    EXPECT_NE(m.find("instances_train2017.json"), std::string::npos) << m;
    EXPECT_NE(m.find("labels.txt"), std::string::npos) << m;
  }
}

TEST(CocoLoad, SyntheticCvatExportSummary) {
  auto root = make_export("summary", 10);
  auto data = load_coco(discover_coco(root).train, {false, true});
  EXPECT_EQ(data.summary.images, 10);
  EXPECT_EQ(data.summary.crowd_dropped, 1);
  EXPECT_EQ(data.summary.images_without_boxes, 1);
  EXPECT_GT(data.summary.boxes, 9);
  EXPECT_EQ(data.max_category_id(), 3);
  EXPECT_EQ(data.images.front().id, 0);  // CVAT 1.0: frame numbers from 0
  std::cout << format_summary(data, "train") << "\n";
}

TEST(CocoLoad, BadAnnotationsNameFileIdAndField) {
  auto root = make_export("bad", 4);
  const auto ann = (root / "annotations" / "instances_default.json").string();
  auto original = read_json(ann);
  auto restore = [&] { write_json(ann, original); };
  auto expect_refused = [&](const std::function<void(json&)>& edit, std::vector<std::string> parts) {
    restore();
    auto msg = load_error(root, edit);
    EXPECT_FALSE(msg.empty());
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect_refused(
      [](json& j) {
        j["annotations"][0]["bbox"] = {1, 2, 3};
      },
      {"instances_default.json", "annotation id 1", "bbox"});
  expect_refused([](json& j) { j["annotations"][0]["bbox"][2] = -5; }, {"annotation id 1", "negative"});
  expect_refused([](json& j) { j["annotations"][0]["bbox"][0] = "x"; }, {"annotation id 1", "bbox"});
  expect_refused([](json& j) { j["annotations"][0]["category_id"] = 77; }, {"category_id 77"});
  expect_refused([](json& j) { j["annotations"][0].erase("image_id"); }, {"missing field 'image_id'"});
  expect_refused([](json& j) { j["annotations"][1]["id"] = j["annotations"][0]["id"]; }, {"duplicate annotation id"});
  expect_refused([](json& j) { j["images"][1]["id"] = j["images"][0]["id"]; }, {"duplicate image id"});
  expect_refused([](json& j) { j["images"][0]["file_name"] = "nope.jpg"; },
                 {"image id 0", "nope.jpg", "--skip_bad_images"});
  expect_refused([](json& j) { j["images"][0]["width"] = "wide"; }, {"image id 0", "'width'"});
  expect_refused(
      [](json& j) {
        j["images"] = json::array();
        j["annotations"] = json::array();
      },
      {"no usable images"});
  // With --skip_bad_images the image is skipped and counted instead.
  restore();
  auto j = read_json(ann);
  j["images"][0]["file_name"] = "nope.jpg";
  write_json(ann, j);
  auto data = load_coco(discover_coco(root).train, {true, false});
  EXPECT_EQ(data.summary.skipped_images, 1);
  EXPECT_EQ(data.summary.images, 3);
}

TEST(CocoLoad, TrainingAndEvaluationReadTheSameRecords) {
  auto root = make_export("one_reader", 8);
  const auto split = discover_coco(root).train;
  const auto train = load_coco(split);
  const auto eval = load_coco_annotations(split.annotation_file);  // detr_eval --gt: no image lookup
  ASSERT_EQ(train.images.size(), eval.images.size());
  ASSERT_EQ(train.categories.size(), eval.categories.size());
  for (size_t k = 0; k < train.categories.size(); ++k) {
    EXPECT_EQ(train.categories[k].id, eval.categories[k].id);
    EXPECT_EQ(train.categories[k].name, eval.categories[k].name);
  }
  int64_t crowd = 0;
  for (size_t i = 0; i < train.images.size(); ++i) {
    const auto &t = train.images[i], &e = eval.images[i];
    EXPECT_EQ(t.id, e.id);
    EXPECT_EQ(t.file_name, e.file_name);
    EXPECT_EQ(t.width, e.width);
    EXPECT_EQ(t.height, e.height);
    EXPECT_TRUE(fs::is_regular_file(t.path)) << t.path;
    EXPECT_TRUE(e.path.empty()) << e.path;
    ASSERT_EQ(t.objects.size(), e.objects.size());
    for (size_t k = 0; k < t.objects.size(); ++k) {
      EXPECT_EQ(t.objects[k].id, e.objects[k].id);
      EXPECT_EQ(t.objects[k].category_id, e.objects[k].category_id);
      EXPECT_EQ(t.objects[k].bbox, e.objects[k].bbox);
      EXPECT_EQ(t.objects[k].area, e.objects[k].area);
      EXPECT_EQ(t.objects[k].iscrowd, e.objects[k].iscrowd);
      crowd += e.objects[k].iscrowd;
    }
  }
  EXPECT_GT(crowd, 0);  // crowd regions are kept for evaluation (training drops them per sample)
  // Training evaluates against load_coco's dataset, detr_eval against load_coco_annotations': the same.
  std::vector<CocoResult> dts;
  for (const auto& rec : train.images)
    for (const auto& o : rec.objects)
      dts.push_back({rec.id, o.category_id, {o.bbox[0] + 1, o.bbox[1], o.bbox[2], o.bbox[3]}, 0.5 + 0.01 * o.id});
  const auto a = evaluate_bbox(train, dts), b = evaluate_bbox(eval, dts);
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_EQ(a.per_category_ap, b.per_category_ap);
  EXPECT_GT(a.stats[0], 0);
}

TEST(CocoLoad, TrainingRulesComeOnTopOfTheSharedReader) {
  auto root = make_export("training_rules", 4);
  const auto ann = root / "annotations" / "instances_default.json";
  const auto original = read_json(ann);
  // Evaluation files may omit an image's size and a category's name, and need every area; training
  // needs the sizes and names, and takes w*h for a missing area.
  auto j = original;
  j["images"][0].erase("width");
  write_json(ann, j);
  EXPECT_NO_THROW(load_coco_annotations(ann));
  EXPECT_NE(load_error(root, [](json&) {}).find("image id 0: missing field 'width'"), std::string::npos);
  j = original;
  j["categories"][0].erase("name");
  write_json(ann, j);
  EXPECT_NO_THROW(load_coco_annotations(ann));
  EXPECT_NE(load_error(root, [](json&) {}).find("categories[0]: missing field 'name'"), std::string::npos);
  j = original;
  j["annotations"][0].erase("area");
  write_json(ann, j);
  EXPECT_EQ(load_error(root, [](json&) {}), "");  // training: area = w*h
  try {
    load_coco_annotations(ann);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing field 'area'"), std::string::npos) << e.what();
  }
  const auto data = load_coco(discover_coco(root).train);
  const auto& bbox = j["annotations"][0]["bbox"];
  bool found = false;
  for (const auto& rec : data.images)
    for (const auto& o : rec.objects)
      if (o.id == j["annotations"][0]["id"].get<int64_t>()) {
        EXPECT_DOUBLE_EQ(o.area, bbox[2].get<double>() * bbox[3].get<double>());
        found = true;
      }
  EXPECT_TRUE(found);
  // A box of negative size: an error naming the annotation, or with --skip_bad_images its image skipped.
  j = original;
  j["annotations"][0]["bbox"][3] = -2;
  write_json(ann, j);
  const auto image_id = j["annotations"][0]["image_id"].get<int64_t>();
  EXPECT_NO_THROW(load_coco_annotations(ann));
  auto skipped = load_coco(discover_coco(root).train, {true, false});
  EXPECT_EQ(skipped.summary.skipped_images, 1);
  ASSERT_EQ(skipped.summary.skipped.size(), 1u);
  EXPECT_NE(skipped.summary.skipped[0].find("image id " + std::to_string(image_id) + ": annotation id"),
            std::string::npos)
      << skipped.summary.skipped[0];
  for (const auto& rec : skipped.images) EXPECT_NE(rec.id, image_id);
}

// ---- segmentations in the reader ---------------------------------------------------------------------

namespace {

// One annotation (id 5) with the given segmentation on image 1 (30 wide, 20 high), read for evaluation.
CocoDataset with_segmentation(const std::string& segmentation,
                              const std::string& image = R"({"id": 1, "width": 30, "height": 20})") {
  return parse_coco_annotations(R"({"images": [)" + image + R"(], "categories": [{"id": 1}],
      "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 6], "area": 60,
                       "segmentation": )" +
                                    segmentation + "}]}",
                                "gt.json");
}

std::string segmentation_error(const std::string& segmentation,
                               const std::string& image = R"({"id": 1, "width": 30, "height": 20})") {
  try {
    with_segmentation(segmentation, image);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CocoSegmentation, KeptCompactlyAsTheFileGivesIt) {
  // Polygons as given; RLE decoded from either encoding (a list of RLE objects merged); [] and null are none.
  auto o = with_segmentation("[[2, 3, 12, 3, 12, 9, 2, 9], [20, 1, 25, 1, 25, 4]]").images[0].objects[0];
  ASSERT_EQ(o.segmentation.polygons.size(), 2u);
  EXPECT_EQ(o.segmentation.polygons[1], (std::vector<double>{20, 1, 25, 1, 25, 4}));
  EXPECT_FALSE(o.segmentation.rle);
  const Rle box = rle_from_box({2, 3, 10, 6}, 20, 30);
  o = with_segmentation(R"({"size": [20, 30], "counts": ")" + rle_to_string(box) + R"("})").images[0].objects[0];
  ASSERT_TRUE(o.segmentation.rle);
  EXPECT_EQ(o.segmentation.rle->counts, box.counts);
  EXPECT_TRUE(o.segmentation.polygons.empty());
  o = with_segmentation(R"({"size": [20, 30], "counts": [40, 20, 540]})").images[0].objects[0];
  EXPECT_EQ(o.segmentation.rle->counts, (std::vector<uint32_t>{40, 20, 540}));
  o = with_segmentation(R"([{"size": [20, 30], "counts": [40, 20, 540]}, {"size": [20, 30], "counts": [50, 20, 530]}])")
          .images[0]
          .objects[0];
  EXPECT_EQ(o.segmentation.rle->counts, (std::vector<uint32_t>{40, 30, 530}));
  EXPECT_TRUE(with_segmentation("[]").images[0].objects[0].segmentation.empty());
  EXPECT_TRUE(with_segmentation("null").images[0].objects[0].segmentation.empty());
  // Polygons need no image size (an evaluation file may omit it); an RLE does.
  EXPECT_EQ(with_segmentation("[[0, 0, 4, 0, 4, 4]]", R"({"id": 1})").images[0].objects[0].segmentation.polygons.size(),
            1u);
}

TEST(CocoSegmentation, ObjectRleIsAnnToRleAndTheBoxForCvatRectangles) {
  const std::string polygons = "[[2, 3, 12, 3, 12, 9, 2, 9], [20, 1, 25, 1, 25, 4]]";
  auto o = with_segmentation(polygons).images[0].objects[0];
  EXPECT_EQ(object_rle(o, 20, 30).counts, rle_from_segmentation(json::parse(polygons), 20, 30).counts);
  // CVAT's [] (pycocotools raises on it): the filled box, as loadRes rasterises box results.
  o = with_segmentation("[]").images[0].objects[0];
  EXPECT_EQ(object_rle(o, 20, 30).counts, rle_from_box({2, 3, 10, 6}, 20, 30).counts);
  EXPECT_EQ(area(object_rle(o, 20, 30)), 60u);
  // An RLE is returned as read, on an image of its size only.
  o = with_segmentation(R"({"size": [20, 30], "counts": [40, 20, 540]})").images[0].objects[0];
  EXPECT_EQ(object_rle(o, 20, 30).counts, (std::vector<uint32_t>{40, 20, 540}));
  try {
    object_rle(o, 30, 20);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "annotation id 5: segmentation.size: [20, 30] differs from the image's [30, 20] (height, width)");
  }
  // Polygons built in code are checked as the reader checks them.
  o.segmentation = {};
  o.segmentation.polygons = {{1, 1, std::nan(""), 5, 5, 5}};
  try {
    object_rle(o, 20, 30);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "annotation id 5: segmentation[0][2]: coordinate nan is not finite");
  }
}

TEST(CocoSegmentation, BadSegmentationsNameFileAnnotationAndField) {
  EXPECT_EQ(segmentation_error(R"("polygon")"),
            "gt.json: annotation id 5: segmentation: expected polygons (a list) or an RLE object, got \"polygon\"");
  EXPECT_EQ(
      segmentation_error("[1, 2, 3, 4, 5, 6]"),
      "gt.json: annotation id 5: segmentation[0]: expected a polygon (a list of numbers) or an RLE object, got 1");
  EXPECT_EQ(
      segmentation_error("[[1, 2, 3, 4]]"),
      "gt.json: annotation id 5: segmentation[0]: a polygon of 4 numbers, which pycocotools reads as a box and fails");
  EXPECT_EQ(segmentation_error(R"([[1, 2, 3, 4, "5", 6]])"),
            "gt.json: annotation id 5: segmentation[0][4]: expected a number, got \"5\"");
  EXPECT_EQ(segmentation_error("[[1, 2, 3, 4, 5, 1e9]]"),
            "gt.json: annotation id 5: segmentation[0][5]: coordinate 1000000000 is beyond +-1e8");
  EXPECT_EQ(segmentation_error(R"({"size": [30, 20], "counts": [600]})"),
            "gt.json: annotation id 5: segmentation.size: [30,20] differs from the image's [20, 30] (height, width)");
  EXPECT_EQ(segmentation_error(R"({"size": [20, 30], "counts": [40, 20, 500]})"),
            "gt.json: annotation id 5: segmentation.counts: runs sum to 560 pixels, expected height*width = 600");
  EXPECT_EQ(segmentation_error(R"({"size": [20, 30], "counts": "0a"})"),
            "gt.json: annotation id 5: segmentation.counts: ends inside the value that starts at character 1");
  EXPECT_EQ(segmentation_error(R"({"counts": "0"})"),
            "gt.json: annotation id 5: segmentation: an RLE object needs `counts` and `size`, got {\"counts\":\"0\"}");
  EXPECT_EQ(segmentation_error(R"({"size": [20, 30], "counts": [600]})", R"({"id": 1})"),
            "gt.json: annotation id 5: segmentation: an RLE needs its image's height and width, which the image does "
            "not declare ([0, 0])");
  // Training reads them the same way.
  auto root = make_export("bad_segmentation", 4);
  const auto msg = load_error(root, [](json& j) { j["annotations"][0]["segmentation"] = {{1, 2, 3, 4}}; });
  EXPECT_NE(msg.find("instances_default.json: annotation id"), std::string::npos) << msg;
  EXPECT_NE(msg.find("segmentation[0]: a polygon of 4 numbers"), std::string::npos) << msg;
}

TEST(CocoSegmentation, SyntheticCvatExportKeepsItsMasks) {
  // CVAT writes [] for rectangles and an uncompressed RLE for brush masks (iscrowd 1).
  auto data = load_coco(discover_coco(make_export("segmentations", 6)).train);
  int64_t rectangles = 0, masks = 0;
  for (const auto& rec : data.images)
    for (const auto& o : rec.objects) {
      const Rle rle = object_rle(o, rec.height, rec.width);
      if (o.segmentation.empty()) {
        ++rectangles;
        EXPECT_EQ(to_bbox(rle), o.bbox) << o.id;  // integer boxes: the box exactly
      } else {
        ++masks;
        EXPECT_TRUE(o.iscrowd);
        EXPECT_EQ(area(rle), static_cast<uint64_t>(3 * rec.height));
      }
    }
  EXPECT_GT(rectangles, 0);
  EXPECT_GT(masks, 0);
}

TEST(CocoSegmentation, SamplesDecodeMasksAtTheirFinalSizeAndNameTheFileWhenTooMany) {
  auto data = load_coco(discover_coco(make_export("mask_samples", 2)).train);
  auto& rec = data.images.at(0);
  const auto one =
      *std::find_if(rec.objects.begin(), rec.objects.end(), [](const CocoObject& o) { return !o.iscrowd; });
  rec.objects.assign(3000, one);  // 3000 objects x 1000 x 1000 at val_size 1000: 3 GB of masks
  const CocoDetection val(data, TransformConfig::with_scales({1000}, 1333, 1000), /*train=*/false, /*masks=*/true);
  const auto loaded = val.load(0);
  EXPECT_FALSE(loaded.target.masks.defined());  // kept as RLEs until the transforms
  ASSERT_TRUE(loaded.mask_rles.has_value());
  EXPECT_EQ(loaded.mask_rles->size(), 3000u);
  std::string msg;
  try {
    val.get(0, 0);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  std::cout << "[ too many masks ] " << msg << "\n";
  EXPECT_EQ(msg.rfind(rec.path.string() + ": image id " + std::to_string(rec.id) + ": masks: 3000 objects", 0), 0u)
      << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  rec.objects.resize(3);
  const auto sample = CocoDetection(data, TransformConfig{}, false, true).get(0, 0);
  EXPECT_EQ(sample.target.masks.sizes(), (std::vector<int64_t>{3, sample.image.size(1), sample.image.size(2)}));
}

TEST(CocoSegmentation, LargeImagesStayCompact) {
  // A 20000 x 20000 image (400 M pixels): reading and rasterising never allocate height*width.
  const std::string image = R"({"id": 1, "width": 20000, "height": 20000})";
  const auto gt = with_segmentation(R"({"size": [20000, 20000], "counts": [100, 5, 399999895]})", image);
  EXPECT_EQ(gt.images[0].objects[0].segmentation.rle->counts.size(), 3u);
  const auto poly = with_segmentation("[[100, 100, 19000, 200, 15000, 19000]]", image).images[0].objects[0];
  const Rle rle = object_rle(poly, 20000, 20000);
  EXPECT_LT(rle.counts.size(), 50000u);  // about two runs a column
  EXPECT_GT(area(rle), 100'000'000u);
}

TEST(CocoLoad, RealExportQuirks) {
  auto root = make_export("quirks", 4);
  const auto ann = root / "annotations" / "instances_default.json";
  auto j = read_json(ann);
  // Absolute file_name from the annotator's machine: found by basename.
  j["images"][0]["file_name"] = "/home/someone/project/images/" + j["images"][0]["file_name"].get<std::string>();
  // No boxes at all: valid, with a warning.
  j["annotations"] = json::array();
  write_json(ann, j);
  auto data = load_coco(discover_coco(root).train, {false, true});
  EXPECT_EQ(data.summary.file_name_fallbacks, 1);
  EXPECT_EQ(data.summary.boxes, 0);
  EXPECT_FALSE(data.summary.warnings.empty());

  // Grayscale and RGBA PNG images decode to 3-channel RGB.
  auto gray = torch::full({20, 30, 3}, 77, torch::kUInt8);
  save_image_rgb(gray, root / "images" / "g.png");
  auto img = load_image_rgb(root / "images" / "g.png");
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{20, 30, 3}));
  EXPECT_EQ(img[5][5][1].item<int>(), 77);

  // Data appended after a JPEG's end (phones append videos) is fine; a cut JPEG is not.
  auto appended = root / "images" / data.images[2].path.filename();
  {
    std::ofstream out(appended, std::ios::app | std::ios::binary);
    out << std::string(10000, '\x42');
  }
  EXPECT_EQ(image_problem(appended), "");
  // Declared and decoded sizes must agree (EXIF-rotated exports do not).
  {
    auto jj = read_json(ann);
    jj["images"][3]["width"] = jj["images"][3]["width"].get<int>() + 1;
    write_json(ann, jj);
    try {
      load_coco(discover_coco(root).train, {false, true});
      ADD_FAILURE() << "size mismatch not detected";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("decodes as"), std::string::npos) << e.what();
    }
    write_json(ann, j);
  }
  // A truncated JPEG is reported with --check_data.
  auto jpg = root / "images" / data.images[1].path.filename();
  auto size = fs::file_size(jpg);
  fs::resize_file(jpg, size / 2);
  EXPECT_NE(image_problem(jpg).find("truncated"), std::string::npos) << image_problem(jpg);
  EXPECT_THROW(load_coco(discover_coco(root).train, {false, true}), std::runtime_error);
}

TEST(CocoLoadOptionalFixtures, RealExportsPassOrFailClearly) {
  const auto base = detr::testing::fixtures_dir().parent_path() / "data" / "real-exports";
  DETR_REQUIRE_FIXTURE(base);
  int loaded = 0, failed = 0;
  for (const auto& e : fs::recursive_directory_iterator(base)) {
    const auto name = e.path().filename().string();
    if (!e.is_regular_file() || e.path().extension() != ".json") continue;
    if (name.rfind("instances_", 0) != 0 && name != "_annotations.coco.json" && name != "annotations.json") continue;
    fs::path root = e.path().parent_path();
    CocoPathOverrides o;
    o.train_annotations = e.path().string();
    if (root.filename() == "annotations") root = root.parent_path();
    try {
      auto layout = discover_coco(root, o);
      auto data = load_coco(layout.train, {false, true});
      ++loaded;
      std::cout << "ok    " << format_summary(data, fs::relative(e.path(), base).string()) << "\n";
    } catch (const std::exception& ex) {
      ++failed;
      std::string msg = ex.what();
      std::cout << "error " << msg << "\n";
      EXPECT_NE(msg.find(e.path().filename().string()), std::string::npos) << msg;  // names the file
    }
  }
  EXPECT_GT(loaded, 5);
  std::cout << loaded << " COCO exports loaded, " << failed << " refused with a reason\n";
}

TEST(Classes, CsvHasHeaderAndIdOrder) {
  auto dir = temp_dir("classes");
  write_classes_csv({{1, "cat"}, {2, "dog, big"}, {5, "bird"}}, dir / "classes.csv");
  std::ifstream in(dir / "classes.csv");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "labels,id\ncat,1\n\"dog, big\",2\nbird,5\n");
}

using Size = std::pair<int64_t, int64_t>;

TEST(Transforms, SizesFollowUpstreamRounding) {
  // 640x480 to 800 (max 1333): int(800 * 640 / 480) = 1066.
  EXPECT_EQ(get_size_with_aspect_ratio(640, 480, 800, 1333), Size(800, 1066));
  // 2:1 capped: round(1333 * 100 / 200) = round(666.5) = 666 (half to even), w = int(666 * 2) = 1332.
  EXPECT_EQ(get_size_with_aspect_ratio(200, 100, 800, 1333), Size(666, 1332));
  // Already at size: unchanged.
  EXPECT_EQ(get_size_with_aspect_ratio(800, 1000, 800, std::nullopt), Size(1000, 800));
}

TEST(Transforms, BoxesFollowFlipCropResizeNormalize) {
  Sample s;
  s.image = torch::arange(3 * 10 * 20, torch::kFloat).reshape({3, 10, 20});
  s.target.boxes = torch::tensor({{2.0f, 1.0f, 6.0f, 5.0f}, {15.0f, 8.0f, 19.0f, 10.0f}});
  s.target.labels = torch::tensor({1, 2}, torch::kLong);
  s.target.area = torch::tensor({16.0f, 8.0f});
  auto f = hflip(s);
  EXPECT_TRUE(torch::equal(f.target.boxes, torch::tensor({{14.0f, 1.0f, 18.0f, 5.0f}, {1.0f, 8.0f, 5.0f, 10.0f}})));
  EXPECT_TRUE(torch::equal(f.image.select(2, 0), s.image.select(2, 19)));
  // A crop that leaves the second box out keeps only the first, with clamped box and area.
  auto c = crop(s, 0, 0, 6, 10);
  ASSERT_EQ(c.target.labels.numel(), 1);
  EXPECT_TRUE(torch::equal(c.target.boxes, torch::tensor({{2.0f, 1.0f, 6.0f, 5.0f}})));
  EXPECT_EQ(c.image.sizes(), (std::vector<int64_t>{3, 6, 10}));
  auto r = resize(s, 20, std::nullopt);  // shorter side 10 -> 20
  EXPECT_EQ(r.image.sizes(), (std::vector<int64_t>{3, 20, 40}));
  EXPECT_TRUE(torch::allclose(r.target.boxes, s.target.boxes * 2));
  EXPECT_NEAR(r.target.area[0].item<double>(), 64.0, 1e-4);
  auto n = normalize(s);
  EXPECT_TRUE(torch::allclose(n.target.boxes[0], torch::tensor({4.0f / 20, 3.0f / 10, 4.0f / 20, 4.0f / 10})));
}

TEST(Loader, SameSeedSameBatchesWhateverTheWorkers) {
  auto root = make_export("loader", 9);
  auto data = load_coco(discover_coco(root).train);
  CocoDetection ds(data, TransformConfig::with_scales({64, 80, 96}, 160, 96), true);
  auto run = [&](int workers) {
    LoaderOptions o;
    o.batch_size = 2;
    o.num_workers = workers;
    o.seed = 7;
    DataLoader loader(ds, o);
    std::vector<Batch> out;
    loader.start_epoch(3);
    while (auto b = loader.next()) out.push_back(std::move(*b));
    return out;
  };
  auto a = run(1), b = run(4), c = run(0);
  ASSERT_EQ(a.size(), 4u);  // drop_last: floor(9 / 2)
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].samples.tensors, b[i].samples.tensors)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].samples.mask, c[i].samples.mask)) << "batch " << i;
    for (size_t k = 0; k < a[i].targets.size(); ++k)
      EXPECT_TRUE(torch::equal(a[i].targets[k].boxes, b[i].targets[k].boxes));
  }
  // Padding is bottom/right and masked.
  const auto& m = a[0].samples.mask;
  EXPECT_FALSE(m[0][0][0].item<bool>());
}

TEST(Loader, BatchLargerThanDatasetIsAClearError) {
  LoaderOptions o;
  o.batch_size = 8;
  try {
    batches_per_epoch(5, o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch_size 8"), std::string::npos) << e.what();
  }
  o.drop_last = false;
  EXPECT_EQ(batches_per_epoch(5, o), 1);
  o.world_size = 2;
  o.drop_last = true;
  o.batch_size = 3;
  EXPECT_EQ(batches_per_epoch(5, o), 1);  // ceil(5 / 2) = 3 per rank
  auto r0 = epoch_indices(5, o, 0);
  o.rank = 1;
  auto r1 = epoch_indices(5, o, 0);
  EXPECT_EQ(r0.size(), 3u);
  EXPECT_EQ(r1.size(), 3u);
}
