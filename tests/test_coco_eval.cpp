// COCO bbox evaluator: pycocotools' COCOeval results on the committed golden data (and the optional larger
// set when present), plus small hand-made cases; the annotation reader as evaluation uses it (no images
// on disk) and the results reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "datasets/coco_eval.h"
#include "datasets/eval_tables.h"
#include "tests/fixtures.h"

namespace {

using detr::datasets::CocoDataset;
using detr::datasets::CocoEvalResult;
using detr::datasets::CocoImageRecord;
using detr::datasets::CocoObject;
using detr::datasets::CocoResult;
using detr::datasets::evaluate_bbox;
using detr::datasets::evaluate_segm;
using detr::datasets::IouType;
using detr::datasets::Rle;

// ---- golden data: pycocotools' numbers ----------------------------------------------------------------

struct Deviation {
  double stat = 0, ap = 0, per_class = 0;
};

// The per-class figures against the golden stats: pycocotools' AP50 (stats[1]) and AR100 (stats[8]) are
// the means over categories of precision[0, :, k, 0, 2] and recall[:, k, 0, 2], so the per-class AP50 and
// AR100 must average to them (each category has all 101 recall points or none); each class's AP is the
// golden per-category AP; a PR curve is monotone and averages to its AP. Returns the largest deviation.
double expect_per_class_consistent(const CocoEvalResult& result) {
  double dev = 0, ap50 = 0, ar100 = 0;
  int n = 0;
  for (const auto& [cat, f] : result.per_category) {
    EXPECT_EQ(f.ap, result.per_category_ap.at(cat)) << "category " << cat;
    if (f.ap < 0) continue;
    ++n;
    ap50 += f.ap50;
    ar100 += f.ar100;
    double curve = 0;
    for (int r = 0; r < 101; ++r) {
      curve += f.precision50[r];
      if (r > 0) {
        EXPECT_LE(f.precision50[r], f.precision50[r - 1]) << "category " << cat << " recall " << r;
      }
    }
    dev = std::max(dev, std::abs(curve / 101 - f.ap50));
  }
  if (n == 0) return dev;
  for (const auto& [got, want] :
       {std::pair{ap50 / n, result.stats[1]}, std::pair{ar100 / n, result.stats[8]},
        std::pair{result.all.ap, result.stats[0]}, std::pair{result.all.ap50, result.stats[1]},
        std::pair{result.all.ar100, result.stats[8]}}) {
    EXPECT_NEAR(got, want, 1e-12);
    dev = std::max(dev, std::abs(got - want));
  }
  return dev;
}

// `result` against a case's expected.json; returns the largest deviations. An expected.json with all stats
// -1 and no categories is "nothing to evaluate" (the optional segm set writes it where the ground truth has
// no objects at all; pycocotools gives -1 for every category there, and so does evaluate()).
Deviation expect_expected(const CocoEvalResult& result, const nlohmann::json& expected) {
  Deviation dev;
  EXPECT_EQ(expected["stats"].size(), 12u);
  for (int i = 0; i < 12; ++i) {
    const double want = expected["stats"][i].get<double>();
    if (want == -1.0) {
      EXPECT_EQ(result.stats[i], -1.0) << "stat " << i;
    }
    EXPECT_NEAR(result.stats[i], want, 1e-6) << "stat " << i;
    dev.stat = std::max(dev.stat, std::abs(result.stats[i] - want));
  }
  const auto& want_ap = expected["per_category_ap"];
  if (want_ap.empty()) {
    for (const auto& [cat, ap] : result.per_category_ap) {
      EXPECT_EQ(ap, -1.0) << "category " << cat;
    }
    return dev;
  }
  EXPECT_EQ(result.per_category_ap.size(), want_ap.size());
  dev.per_class = expect_per_class_consistent(result);
  for (const auto& [cat, ap] : result.per_category_ap) {
    const auto it = want_ap.find(std::to_string(cat));
    if (it == want_ap.end()) {
      ADD_FAILURE() << "category " << cat << " not in expected.json";
      continue;
    }
    EXPECT_NEAR(ap, it->get<double>(), 1e-6) << "category " << cat;
    dev.ap = std::max(dev.ap, std::abs(ap - it->get<double>()));
  }
  return dev;
}

// Every case_NN/ of a golden directory ({gt,dt,expected}.json) gives pycocotools' stats and per-category
// AP; prints the largest deviations. A case with gt_cvat.json (the same ground truth with CVAT's
// `"segmentation": []` for rectangles) must score the same from it.
void expect_pycocotools_cases(const std::filesystem::path& dir, IouType iou_type = IouType::bbox) {
  Deviation max_dev;
  int cases = 0, cvat_variants = 0, bbox_too = 0;
  for (int n = 0;; ++n) {
    char name[16];
    std::snprintf(name, sizeof name, "case_%02d", n);
    const auto case_dir = dir / name;
    if (!std::filesystem::exists(case_dir)) break;
    SCOPED_TRACE(case_dir.string());
    const auto expected = nlohmann::json::parse(std::ifstream(case_dir / "expected.json"));
    EXPECT_EQ(expected.value("iouType", "bbox"), detr::datasets::iou_type_name(iou_type));
    std::vector<std::string> gt_files{"gt.json"};
    if (std::filesystem::exists(case_dir / "gt_cvat.json")) gt_files.push_back("gt_cvat.json");
    for (const auto& gt_file : gt_files) {
      SCOPED_TRACE(gt_file);
      const auto gt = detr::datasets::load_coco_annotations(case_dir / gt_file);
      const auto dt = detr::datasets::load_coco_results((case_dir / "dt.json").string(), gt);
      const Deviation dev = expect_expected(detr::datasets::evaluate(gt, dt, iou_type), expected);
      max_dev.stat = std::max(max_dev.stat, dev.stat);
      max_dev.ap = std::max(max_dev.ap, dev.ap);
      max_dev.per_class = std::max(max_dev.per_class, dev.per_class);
      if (expected.contains("bbox")) {  // the mask results as boxes (loadRes's bbox and area for each)
        SCOPED_TRACE("as bbox");
        const Deviation box = expect_expected(evaluate_bbox(gt, dt), expected["bbox"]);
        max_dev.stat = std::max(max_dev.stat, box.stat);
        max_dev.ap = std::max(max_dev.ap, box.ap);
        bbox_too += gt_file == "gt.json";
      }
    }
    cvat_variants += static_cast<int>(gt_files.size()) - 1;
    ++cases;
  }
  EXPECT_GT(cases, 0);
  std::cout << "[ cocoeval " << detr::datasets::iou_type_name(iou_type) << " ] " << dir.string() << ": " << cases
            << " cases (" << cvat_variants << " also as CVAT rectangles, " << bbox_too
            << " also scored as bbox); max |stat - pycocotools| = " << max_dev.stat
            << ", max |per-category AP - pycocotools| = " << max_dev.ap
            << ", max |per-class AP50/AR100 means and PR curves - pycocotools' stats| = " << max_dev.per_class << "\n";
}

// The cases committed in tests/data (tests/reference/make_cocoeval.py): always there.
TEST(CocoEval, MatchesPycocotoolsOnCommittedCases) {
  const auto dir = detr::testing::data_dir() / "cocoeval";
  ASSERT_TRUE(std::filesystem::exists(dir / "case_00")) << "committed golden data missing: " << dir;
  expect_pycocotools_cases(dir);
}

// The larger optional set (DETR_FIXTURES or ../shared/fixtures): skipped when absent.
TEST(CocoEvalOptionalFixtures, MatchesPycocotoolsOnFixtures) {
  const auto dir = detr::testing::fixtures_dir() / "cocoeval";
  DETR_REQUIRE_FIXTURE(dir);
  expect_pycocotools_cases(dir);
}

TEST(CocoEvalSegm, MatchesPycocotoolsOnCommittedCases) {
  const auto dir = detr::testing::data_dir() / "cocoeval_segm";
  ASSERT_TRUE(std::filesystem::exists(dir / "case_00")) << "committed golden data missing: " << dir;
  expect_pycocotools_cases(dir, IouType::segm);
}

TEST(CocoEvalSegmOptionalFixtures, MatchesPycocotoolsOnFixtures) {
  const auto dir = detr::testing::fixtures_dir() / "cocoeval_segm";
  DETR_REQUIRE_FIXTURE(dir);
  expect_pycocotools_cases(dir, IouType::segm);
}

// ---- hand-made cases --------------------------------------------------------------------------------

// Ground truth with the given images (ids, sizes) and categories; objects are added with add_box.
CocoDataset dataset(const std::vector<CocoImageRecord>& images, std::vector<detr::datasets::CocoCategory> categories) {
  CocoDataset gt;
  gt.images = images;
  gt.categories = std::move(categories);
  return gt;
}

CocoImageRecord image(int64_t id, int64_t width = 0, int64_t height = 0) {
  CocoImageRecord rec;
  rec.id = id;
  rec.width = width;
  rec.height = height;
  return rec;
}

void add_box(CocoDataset& gt,
             int64_t id,
             int64_t image_id,
             int64_t cat,
             double x,
             double y,
             double w,
             double h,
             bool crowd = false) {
  CocoObject o;
  o.id = id;
  o.category_id = cat;
  o.bbox = {x, y, w, h};
  o.area = w * h;
  o.iscrowd = crowd;
  for (auto& rec : gt.images)
    if (rec.id == image_id) {
      rec.objects.push_back(o);
      return;
    }
  ADD_FAILURE() << "no image " << image_id;
}

CocoResult det(int64_t image_id, int64_t cat, double x, double y, double w, double h, double score) {
  CocoResult d;
  d.image_id = image_id;
  d.category_id = cat;
  d.bbox = {x, y, w, h};
  d.score = score;
  return d;
}

// Images 1..3 and categories 1, 2; one small, one medium and one large box, one per image.
CocoDataset three_sizes() {
  auto gt = dataset({image(1, 640, 480), image(2, 640, 480), image(3, 640, 480)}, {{1, "cat"}, {2, "dog"}});
  add_box(gt, 1, 1, 1, 10, 10, 20, 20);      // small (400)
  add_box(gt, 2, 2, 1, 50, 50, 60, 60);      // medium (3600)
  add_box(gt, 3, 3, 2, 100, 100, 200, 150);  // large (30000)
  return gt;
}

std::vector<CocoResult> perfect(const CocoDataset& gt) {
  std::vector<CocoResult> dts;
  for (const auto& rec : gt.images)
    for (const auto& o : rec.objects)
      dts.push_back(det(rec.id, o.category_id, o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3], 0.9));
  return dts;
}

TEST(CocoEval, PerfectDetectionsScoreOne) {
  const auto gt = three_sizes();
  const auto result = evaluate_bbox(gt, perfect(gt));
  for (int i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(result.stats[i], 1.0) << "stat " << i;
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(1), 1.0);
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(2), 1.0);
}

TEST(CocoEval, MaxDetsLimitsRecall) {
  auto gt = three_sizes();
  add_box(gt, 4, 1, 1, 300, 300, 20, 20);  // a second small box on image 1
  const auto result = evaluate_bbox(gt, perfect(gt));
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
  EXPECT_DOUBLE_EQ(result.stats[6], (2.0 / 3 + 1.0) / 2);  // AR@1: cat 1 finds 2 of 3, cat 2 1 of 1
  EXPECT_DOUBLE_EQ(result.stats[8], 1.0);
}

TEST(CocoEval, CategoryWithoutDetectionsScoresZero) {
  const auto gt = three_sizes();
  auto dts = perfect(gt);
  dts.pop_back();                                 // nothing for category 2
  dts.push_back(det(1, 99, 0, 0, 10, 10, 0.99));  // unknown category: ignored, as COCOeval does
  const auto result = evaluate_bbox(gt, dts);
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(1), 1.0);
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(2), 0.0);
  EXPECT_DOUBLE_EQ(result.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(result.stats[5], 0.0);  // large: only category 2 has one
  EXPECT_DOUBLE_EQ(result.stats[3], 1.0);  // small
  EXPECT_EQ(result.per_category_ap.count(99), 0u);
}

TEST(CocoEval, EmptyResultListIsNothingToEvaluate) {
  // pycocotools' COCO.loadRes cannot load []; the golden data (case "no_detections") records all -1.
  const auto result = evaluate_bbox(three_sizes(), {});
  for (double s : result.stats) EXPECT_EQ(s, -1.0);
  EXPECT_TRUE(result.per_category_ap.empty());
}

TEST(CocoEval, CategoryWithoutGroundTruthIsMinusOne) {
  auto gt = three_sizes();
  gt.categories.push_back({7, "unused"});
  auto dts = perfect(gt);
  dts.push_back(det(2, 7, 0, 0, 30, 30, 0.5));  // a detection of it changes nothing
  const auto result = evaluate_bbox(gt, dts);
  EXPECT_EQ(result.per_category_ap.at(7), -1.0);
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
}

TEST(CocoEval, ImageWithoutGroundTruth) {
  auto gt = dataset({image(1), image(2)}, {{1, "a"}});
  add_box(gt, 1, 1, 1, 10, 10, 50, 50);
  // A false positive on the empty image ranked first halves precision at every recall: AP 0.5.
  auto result = evaluate_bbox(gt, {det(1, 1, 10, 10, 50, 50, 0.9), det(2, 1, 0, 0, 50, 50, 0.95)});
  EXPECT_DOUBLE_EQ(result.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(result.stats[8], 1.0);
  // Ranked last it costs nothing.
  result = evaluate_bbox(gt, {det(1, 1, 10, 10, 50, 50, 0.9), det(2, 1, 0, 0, 50, 50, 0.5)});
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
}

TEST(CocoEval, CrowdRegionsIgnoreDetectionsInside) {
  auto gt = dataset({image(1)}, {{1, "person"}});
  add_box(gt, 1, 1, 1, 0, 0, 40, 40);
  add_box(gt, 2, 1, 1, 100, 100, 300, 300, /*crowd=*/true);
  // Against a crowd box IoU = intersection / detection area, so small boxes inside it match it
  // (several may) and are ignored instead of counted as false positives.
  const std::vector<CocoResult> dts = {det(1, 1, 150, 150, 20, 20, 0.99), det(1, 1, 200, 200, 30, 30, 0.98),
                                       det(1, 1, 0, 0, 40, 40, 0.5)};
  auto result = evaluate_bbox(gt, dts);
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
  EXPECT_DOUBLE_EQ(result.stats[8], 1.0);

  gt.images[0].objects[1].iscrowd = false;  // now it is an object that nothing matches, and they are misses
  result = evaluate_bbox(gt, dts);
  EXPECT_LT(result.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(result.stats[8], 0.5);
}

TEST(CocoEval, DetectionsOutsideTheAreaRangeAreIgnored) {
  auto gt = dataset({image(1)}, {{1, "a"}});
  add_box(gt, 1, 1, 1, 0, 0, 20, 20);  // small
  // A large unmatched detection with a higher score does not hurt AP small, but does hurt AP all.
  const auto result = evaluate_bbox(gt, {det(1, 1, 0, 0, 20, 20, 0.5), det(1, 1, 200, 200, 100, 100, 0.9)});
  EXPECT_DOUBLE_EQ(result.stats[3], 1.0);
  EXPECT_DOUBLE_EQ(result.stats[0], 0.5);
  EXPECT_EQ(result.stats[4], -1.0);  // no medium ground truth
  EXPECT_EQ(result.stats[5], -1.0);
}

TEST(CocoEval, GroundTruthIdZeroNeverCountsAsMatched) {
  // pycocotools stores the matched gt id in dtMatches, so id 0 reads as "no match".
  auto gt = dataset({image(1)}, {{1, "a"}});
  add_box(gt, 0, 1, 1, 0, 0, 50, 50);
  const auto result = evaluate_bbox(gt, {det(1, 1, 0, 0, 50, 50, 0.9)});
  EXPECT_DOUBLE_EQ(result.stats[0], 0.0);
}

TEST(CocoEval, DetectionOnUnknownImageIsAnError) {
  const auto gt = three_sizes();
  try {
    detr::datasets::parse_coco_results(
        R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
            {"image_id": 42, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])",
        "dt.json", gt);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "dt.json: results[1]: image_id 42 is not an image of the ground truth");
  }
  EXPECT_THROW(evaluate_bbox(gt, {det(42, 1, 0, 0, 1, 1, 0.5)}), std::runtime_error);
}

TEST(CocoEval, ResultsKeepWhatLoadResReads) {
  const auto dts = detr::datasets::parse_coco_results(
      R"([{"image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.25, "id": 77, "area": 3}])", "dt.json",
      three_sizes());
  ASSERT_EQ(dts.size(), 1u);
  EXPECT_EQ(dts[0].image_id, 1);
  EXPECT_EQ(dts[0].category_id, 5);  // unknown categories are kept; evaluation ignores them
  EXPECT_EQ(dts[0].bbox, (std::array<double, 4>{1, 2, 3, 4}));
  EXPECT_DOUBLE_EQ(dts[0].score, 0.25);
}

// The error message of `parse` on `text`, or "" when it does not throw.
template <class F>
std::string error_of(F parse) {
  try {
    parse();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(CocoEval, MalformedInputNamesFileAndField) {
  using detr::datasets::parse_coco_annotations;
  using detr::datasets::parse_coco_results;
  const auto gt_error = [](const char* text) { return error_of([&] { parse_coco_annotations(text, "gt.json"); }); };
  EXPECT_EQ(gt_error(R"({"images": [], "categories": []})"), "gt.json: missing field 'annotations'");
  EXPECT_EQ(gt_error(R"([])"), "gt.json: expected a JSON object with images, annotations and categories");
  EXPECT_EQ(gt_error(R"({"images": {}, "categories": [], "annotations": []})"),
            "gt.json: 'images' must be a list, got {}");
  EXPECT_NE(gt_error(R"({"images": [)").find("gt.json: not valid JSON"), std::string::npos);
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]})"),
            "gt.json: annotation id 5: missing field 'area'");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "area": 1}]})"),
            "gt.json: annotation id 5: 'bbox' must be [x, y, width, height] numbers, got [0,0,1]");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1}]})"),
            "gt.json: annotation id 5: image_id 2 is not in images");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "area": 1}]})"),
            "gt.json: annotation id 5: category_id 2 is not in categories");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1,
                                         "iscrowd": "yes"}]})"),
            "gt.json: annotation id 5: 'iscrowd' must be 0 or 1, got \"yes\"");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1},
                                        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1}]})"),
            "gt.json: annotations[1]: duplicate annotation id 5");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}, {"id": 1}], "categories": [], "annotations": []})"),
            "gt.json: images[1]: duplicate image id 1");
  EXPECT_EQ(gt_error(R"({"images": [], "categories": [{"id": 1}, {"id": 1.0}], "annotations": []})"),
            "gt.json: categories[1]: duplicate category id 1");
  EXPECT_EQ(gt_error(R"({"images": [{"id": "a"}], "categories": [], "annotations": []})"),
            "gt.json: images[0]: 'id' must be an integer within int64, got \"a\"");
  EXPECT_EQ(gt_error(R"({"images": [3], "categories": [], "annotations": []})"),
            "gt.json: images[0]: expected a JSON object, got 3");
  // Optional fields, where present, are well typed.
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1, "width": "wide"}], "categories": [], "annotations": []})"),
            "gt.json: image id 1: 'width' must be an integer within int64, got \"wide\"");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1, "file_name": 7}], "categories": [], "annotations": []})"),
            "gt.json: image id 1: 'file_name' must be a string, got 7");
  EXPECT_EQ(gt_error(R"({"images": [], "categories": [{"id": 1, "name": ["a"]}], "annotations": []})"),
            "gt.json: categories[0]: 'name' must be a string, got [\"a\"]");

  const auto gt = three_sizes();
  const auto dt_error = [&](const char* text) { return error_of([&] { parse_coco_results(text, "dt.json", gt); }); };
  EXPECT_EQ(dt_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])"),
            "dt.json: results[0]: missing field 'score'");
  EXPECT_EQ(dt_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}])"),
            "dt.json: results[0]: 'score' must be a number, got \"high\"");
  EXPECT_EQ(dt_error(R"([{"image_id": 1.5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])"),
            "dt.json: results[0]: 'image_id' must be an integer within int64, got 1.5");
  EXPECT_EQ(dt_error(R"({"annotations": []})"), "dt.json: expected a JSON array of results");
  EXPECT_EQ(dt_error(R"([3])"), "dt.json: results[0]: expected a JSON object, got 3");
  EXPECT_NE(dt_error(R"([{)").find("dt.json: not valid JSON"), std::string::npos);

  EXPECT_EQ(error_of([] { detr::datasets::load_coco_annotations("/nonexistent/gt.json"); }),
            "/nonexistent/gt.json: cannot open annotation file");
  EXPECT_EQ(error_of([] { detr::datasets::load_coco_results("/nonexistent/dt.json", CocoDataset{}); }),
            "/nonexistent/dt.json: cannot open results file");
}

// ---- the annotation reader as evaluation uses it -------------------------------------------------------

TEST(CocoReader, EvaluationReadsEveryAnnotationWithoutImagesOnDisk) {
  // No file_name, width, height or category name needed; images and categories come back sorted by id,
  // each image's objects in file order with crowd regions and the file's area; ids a training split
  // would refuse (category 1000000, a negative box) are fine here, as in pycocotools.
  const auto gt = detr::datasets::parse_coco_annotations(R"({
      "images": [{"id": 9, "file_name": "nine.jpg", "width": 640, "height": 480}, {"id": 2}, {"id": 5, "width": null}],
      "categories": [{"id": 1000000, "name": "big"}, {"id": 3}],
      "annotations": [
        {"id": 11, "image_id": 9, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 7.5, "iscrowd": 1},
        {"id": 0, "image_id": 2, "category_id": 1000000, "bbox": [0, 0, -1, 2], "area": 0},
        {"id": 12, "image_id": 9, "category_id": 3, "bbox": [5, 6, 7, 8.5], "area": 40, "iscrowd": false}]})",
                                                         "gt.json");
  EXPECT_EQ(gt.annotation_file, "gt.json");
  ASSERT_EQ(gt.images.size(), 3u);
  EXPECT_EQ(gt.images[0].id, 2);
  EXPECT_EQ(gt.images[1].id, 5);
  EXPECT_EQ(gt.images[2].id, 9);
  EXPECT_EQ(gt.images[0].width, 0);
  EXPECT_EQ(gt.images[0].height, 0);
  EXPECT_EQ(gt.images[1].width, 0);  // null is absent
  EXPECT_EQ(gt.images[2].width, 640);
  EXPECT_EQ(gt.images[2].height, 480);
  EXPECT_EQ(gt.images[2].file_name, "nine.jpg");
  for (const auto& rec : gt.images) EXPECT_TRUE(rec.path.empty()) << rec.id;
  ASSERT_EQ(gt.categories.size(), 2u);
  EXPECT_EQ(gt.categories[0].id, 3);
  EXPECT_EQ(gt.categories[0].name, "");
  EXPECT_EQ(gt.categories[1].id, 1000000);
  ASSERT_EQ(gt.images[2].objects.size(), 2u);
  const auto& crowd = gt.images[2].objects[0];
  EXPECT_EQ(crowd.id, 11);
  EXPECT_EQ(crowd.category_id, 3);
  EXPECT_EQ(crowd.bbox, (std::array<double, 4>{1, 2, 3, 4}));
  EXPECT_DOUBLE_EQ(crowd.area, 7.5);  // the file's, not w*h
  EXPECT_TRUE(crowd.iscrowd);
  EXPECT_EQ(gt.images[2].objects[1].id, 12);
  EXPECT_FALSE(gt.images[2].objects[1].iscrowd);
  ASSERT_EQ(gt.images[0].objects.size(), 1u);
  EXPECT_EQ(gt.images[0].objects[0].bbox[2], -1);
  EXPECT_TRUE(gt.images[1].objects.empty());
  EXPECT_EQ(gt.summary.images, 0);  // the summary is load_coco's
}

TEST(CocoReader, LoadAndParseAgreeOnGoldenFiles) {
  const auto path = detr::testing::data_dir() / "cocoeval" / "case_00" / "gt.json";
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto loaded = detr::datasets::load_coco_annotations(path);
  const auto parsed = detr::datasets::parse_coco_annotations(text, path.string());
  const auto doc = nlohmann::json::parse(text);
  ASSERT_EQ(loaded.images.size(), doc["images"].size());
  ASSERT_EQ(parsed.images.size(), loaded.images.size());
  size_t objects = 0;
  for (size_t i = 0; i < loaded.images.size(); ++i) {
    EXPECT_EQ(parsed.images[i].id, loaded.images[i].id);
    EXPECT_EQ(parsed.images[i].file_name, loaded.images[i].file_name);
    ASSERT_EQ(parsed.images[i].objects.size(), loaded.images[i].objects.size());
    objects += loaded.images[i].objects.size();
  }
  EXPECT_EQ(objects, doc["annotations"].size());  // crowd annotations too
  EXPECT_EQ(loaded.categories.size(), doc["categories"].size());
}

TEST(CocoEval, FormatSummaryMatchesPycocotools) {
  CocoEvalResult result;
  result.stats = {0.4205, 0.6, 0.45, -1, 0.3, 0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  const std::string text = detr::datasets::format_summary(result);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.420");
  EXPECT_NE(text.find(" Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.450\n"),
            std::string::npos);
  EXPECT_NE(text.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"),
            std::string::npos);
  EXPECT_NE(text.find(" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.100\n"),
            std::string::npos);
  EXPECT_NE(text.find(" Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.600\n"),
            std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 12);
}

// ---- segm: hand-made cases --------------------------------------------------------------------------

// A 100x80 image (id 1) with a triangle (id 1, category 1, lower left of its box), a CVAT rectangle
// (id 2, `[]`) and a crowd region as an uncompressed RLE (id 3, the left 20 columns).
CocoDataset masks_gt() {
  std::string crowd = R"({"size": [80, 100], "counts": [0, 1600, 6400]})";
  return detr::datasets::parse_coco_annotations(R"({"images": [{"id": 1, "width": 100, "height": 80}],
      "categories": [{"id": 1}, {"id": 2}],
      "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 10, 30, 30], "area": 450,
         "segmentation": [[40, 10, 40, 40, 70, 40]]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [75, 50, 20, 20], "area": 400, "segmentation": []},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 80], "area": 1600, "iscrowd": 1,
         "segmentation": )" + crowd + R"(}]})",
                                                "gt.json");
}

Rle object_mask(const CocoDataset& gt, size_t k) {
  const auto& image = gt.images[0];
  return detr::datasets::object_rle(image.objects.at(k), image.height, image.width);
}

TEST(CocoEvalSegm, ObjectMasksScoreOne) {
  const auto gt = masks_gt();
  std::vector<CocoResult> dts;
  for (size_t k = 0; k < 2; ++k)
    dts.push_back(detr::datasets::make_segm_result(1, gt.images[0].objects[k].category_id, object_mask(gt, k), 0.9));
  const auto result = evaluate_segm(gt, dts);
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(1), 1.0);
  EXPECT_DOUBLE_EQ(result.per_category_ap.at(2), 1.0);  // the CVAT rectangle is its filled box
  // make_segm_result is loadRes's segmentation branch: box and area from the mask.
  EXPECT_EQ(dts[1].bbox, (std::array<double, 4>{75, 50, 20, 20}));
  EXPECT_EQ(dts[1].area, 400.0);
  EXPECT_EQ(dts[0].area, static_cast<double>(detr::datasets::area(object_mask(gt, 0))));
}

TEST(CocoEvalSegm, MasksDecideWhereBoxesAgree) {
  auto gt = masks_gt();
  // The triangle's mirror image (upper right of its box) with the object's box: little mask overlap.
  CocoResult d = det(1, 1, 40, 10, 30, 30, 0.9);
  d.segmentation = detr::datasets::rle_from_polygons({{40, 10, 70, 10, 70, 40}}, 80, 100);
  EXPECT_DOUBLE_EQ(evaluate_bbox(gt, {d}).per_category_ap.at(1), 1.0);
  EXPECT_DOUBLE_EQ(evaluate_segm(gt, {d}).per_category_ap.at(1), 0.0);
  // A result without a mask is scored with its filled box, as loadRes gives box results one.
  CocoResult box = det(1, 2, 75, 50, 20, 20, 0.5);
  EXPECT_DOUBLE_EQ(evaluate_segm(gt, {box}).per_category_ap.at(2), 1.0);
}

TEST(CocoEvalSegm, CrowdMasksIgnoreDetectionsInside) {
  const auto gt = masks_gt();
  // Masks inside the crowd columns match it (intersection / detection area) and are ignored.
  std::vector<CocoResult> dts{detr::datasets::make_segm_result(1, 1, object_mask(gt, 0), 0.5)};
  for (int k = 0; k < 3; ++k)
    dts.push_back(detr::datasets::make_segm_result(
        1, 1, detr::datasets::rle_from_box({2.0 + 5 * k, 5.0 + 20 * k, 4, 10}, 80, 100), 0.9 - 0.1 * k));
  EXPECT_DOUBLE_EQ(evaluate_segm(gt, dts).per_category_ap.at(1), 1.0);
  // Outside it they are false positives ranked first.
  dts.push_back(detr::datasets::make_segm_result(1, 1, detr::datasets::rle_from_box({30, 60, 4, 10}, 80, 100), 0.95));
  EXPECT_LT(evaluate_segm(gt, dts).per_category_ap.at(1), 0.6);
}

TEST(CocoEvalSegm, ErrorsNameTheImageOrDetection) {
  const auto gt = masks_gt();
  auto d = detr::datasets::make_segm_result(1, 1, detr::datasets::rle_from_box({0, 0, 5, 5}, 100, 80), 0.5);
  EXPECT_EQ(error_of([&] { evaluate_segm(gt, {d}); }),
            "detection 0: segmentation size [100, 80] differs from image id 1's [80, 100] (height, width)");
  auto sizeless = detr::datasets::parse_coco_annotations(
      R"({"images": [{"id": 4}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "image_id": 4, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4,
                           "segmentation": [[0, 0, 0, 2, 2, 2]]}]})",
      "gt.json");
  EXPECT_EQ(error_of([&] { evaluate_segm(sizeless, {det(4, 1, 0, 0, 2, 2, 0.5)}); }),
            "gt.json: image id 4: segm evaluation needs its height and width (pycocotools' annToRLE reads them)");
  EXPECT_NO_THROW(evaluate_bbox(sizeless, {det(4, 1, 0, 0, 2, 2, 0.5)}));  // bbox reads no masks
}

TEST(CocoEvalSegm, ResultsAsLoadResReadsThem) {
  const auto gt = masks_gt();
  using detr::datasets::parse_coco_results;
  // Segmentation branch (the first result has no bbox): area and box from the mask, a given box kept.
  const Rle square = detr::datasets::rle_from_box({10, 20, 4, 3}, 80, 100);
  const nlohmann::json mask = {{"size", {80, 100}}, {"counts", detr::datasets::rle_to_string(square)}};
  auto dts = parse_coco_results(
      nlohmann::json::array(
          {{{"image_id", 1}, {"category_id", 1}, {"score", 0.5}, {"area", 1}, {"segmentation", mask}},
           {{"image_id", 1}, {"category_id", 2}, {"score", 0.25}, {"bbox", {1, 2, 3, 4}}, {"segmentation", mask}}})
          .dump(),
      "dt.json", gt);
  ASSERT_EQ(dts.size(), 2u);
  EXPECT_EQ(dts[0].segmentation->counts, square.counts);
  EXPECT_EQ(dts[0].area, 12.0);
  EXPECT_EQ(dts[0].bbox, (std::array<double, 4>{10, 20, 4, 3}));
  EXPECT_EQ(dts[1].area, 12.0);
  EXPECT_EQ(dts[1].bbox, (std::array<double, 4>{1, 2, 3, 4}));
  // bbox branch (the first result has one): area w*h, a mask where given (any form annToRLE reads).
  dts = parse_coco_results(R"([{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]},
    {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "segmentation": [[1, 2, 1, 6, 4, 6, 4, 2]]}])",
                           "dt.json", gt);
  EXPECT_FALSE(dts[0].segmentation);
  EXPECT_FALSE(dts[0].area);
  ASSERT_TRUE(dts[1].segmentation);
  EXPECT_EQ(detr::datasets::area(*dts[1].segmentation), 12u);
  EXPECT_FALSE(dts[1].area);
}

TEST(CocoEvalSegm, MalformedMaskResultsNameTheField) {
  const auto gt = masks_gt();
  const auto dt_error = [&](const std::string& text) {
    return error_of([&] { detr::datasets::parse_coco_results(text, "dt.json", gt); });
  };
  EXPECT_EQ(
      dt_error(
          R"([{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [100, 80], "counts": "0"}}])"),
      "dt.json: results[0]: segmentation.size: [100,80] differs from the image's [80, 100] (height, width)");
  EXPECT_EQ(
      dt_error(
          R"([{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [80, 100], "counts": [8000]}}])"),
      "dt.json: results[0]: 'segmentation' must be a compressed RLE {\"size\": [height, width], \"counts\": \"...\"} "
      "(COCO.loadRes reads no other mask without a bbox), got an object of 2 keys");
  EXPECT_EQ(
      dt_error(
          R"([{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [80, 100], "counts": "52"}}])"),
      "dt.json: results[0]: segmentation.counts: runs sum to 7 pixels, expected height*width = 8000");
  EXPECT_EQ(dt_error(R"([{"image_id": 1, "category_id": 1, "score": 0.5}])"),
            "dt.json: results[0]: missing field 'bbox' (or 'segmentation' for mask results)");
  EXPECT_EQ(
      dt_error(
          R"([{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 1, 1], "segmentation": [[0, 0, 1, 1]]}])"),
      "dt.json: results[0]: segmentation[0]: a polygon of 4 numbers, which pycocotools reads as a box and fails");
  const auto sizeless = detr::datasets::parse_coco_annotations(
      R"({"images": [{"id": 4}], "categories": [{"id": 1}], "annotations": []})", "gt.json");
  EXPECT_EQ(
      error_of([&] {
        detr::datasets::parse_coco_results(
            R"([{"image_id": 4, "category_id": 1, "score": 0.5, "segmentation": {"size": [1, 1], "counts": "1"}}])",
            "dt.json", sizeless);
      }),
      "dt.json: results[0]: 'segmentation' needs the height and width of image id 4, which the ground truth "
      "does not declare");
}

TEST(CocoEvalSegm, IouTypeNames) {
  EXPECT_EQ(detr::datasets::parse_iou_type("bbox"), IouType::bbox);
  EXPECT_EQ(detr::datasets::parse_iou_type("segm"), IouType::segm);
  EXPECT_STREQ(detr::datasets::iou_type_name(IouType::segm), "segm");
  EXPECT_THROW(detr::datasets::parse_iou_type("mask"), std::invalid_argument);
}

// ---- per-class figures and the confusion matrix (datasets/eval_tables.h) ------------------------------

TEST(EvalTables, PerClassCsvNamesEachClassWithItsFigures) {
  auto gt = three_sizes();
  gt.categories[1].name = "hot \"dog\", big";
  auto dts = perfect(gt);
  dts.pop_back();  // nothing for category 2
  const auto result = evaluate_bbox(gt, dts);
  const auto rows = detr::datasets::per_class_rows(gt.categories, result);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].bbox.ap50, 1.0);
  EXPECT_EQ(rows[0].bbox.ar100, 1.0);
  EXPECT_EQ(rows[1].bbox.ap, 0.0);
  EXPECT_EQ(rows[1].bbox.precision50[0], 0.0);
  const auto csv = detr::datasets::per_class_csv(rows);
  std::cout << csv;
  EXPECT_EQ(csv, "class,id,AP,AP50,AR100\ncat,1,1,1,1\n\"hot \"\"dog\"\", big\",2,0,0,0\n");
  const auto both = detr::datasets::per_class_csv(detr::datasets::per_class_rows(gt.categories, result, &result));
  EXPECT_EQ(both.substr(0, both.find('\n')), "class,id,AP,AP50,AR100,segm_AP,segm_AP50,segm_AR100");
}

TEST(EvalTables, ConfusionMatrixCountsMatchesMissesAndFalsePositives) {
  auto gt = dataset({image(1, 640, 480), image(2, 640, 480)}, {{1, "cat"}, {2, "dog"}});
  add_box(gt, 1, 1, 1, 10, 10, 100, 100);    // found as a cat, and found twice (a duplicate)
  add_box(gt, 2, 1, 2, 300, 300, 100, 100);  // found as a cat: confused
  add_box(gt, 3, 2, 2, 10, 10, 50, 50);      // missed (only a low-scored detection)
  add_box(gt, 4, 2, 1, 200, 200, 200, 200, /*crowd=*/true);
  const std::vector<CocoResult> dts{
      det(1, 1, 12, 12, 100, 100, 0.9),    // cat on cat
      det(1, 1, 8, 8, 100, 100, 0.8),      // duplicate: a false positive
      det(1, 1, 305, 300, 100, 100, 0.7),  // cat on dog
      det(2, 2, 10, 10, 50, 50, 0.3),      // below the threshold: left out
      det(2, 1, 250, 250, 50, 50, 0.9),    // inside the crowd region: not counted
      det(2, 2, 500, 10, 40, 40, 0.6),     // on nothing: a false positive
      det(2, 7, 500, 10, 40, 40, 0.9),     // a category the ground truth lacks: left out
  };
  const auto m = detr::datasets::confusion_matrix(gt, dts);
  const std::vector<std::vector<int64_t>> want{{1, 0, 0}, {1, 0, 1}, {1, 1, 0}};  // rows: cat, dog, background
  EXPECT_EQ(m.counts, want);
  const auto csv = detr::datasets::confusion_csv(m);
  std::cout << csv;
  EXPECT_EQ(csv, "ground_truth\\detected,cat,dog,background\ncat,1,0,0\ndog,1,0,1\nbackground,1,1,0\n");
  // Lower the threshold: the missed dog is found.
  EXPECT_EQ(detr::datasets::confusion_matrix(gt, dts, 0.25).counts[1], (std::vector<int64_t>{1, 1, 0}));
  // A crowd region ignores only detections of its own class: a dog there is a false positive.
  auto dog_in_crowd = dts;
  dog_in_crowd[4].category_id = 2;
  EXPECT_EQ(detr::datasets::confusion_matrix(gt, dog_in_crowd).counts[2], (std::vector<int64_t>{1, 2, 0}));
  // 150 detections on one image: its 100 best count (COCOeval's maxDets).
  std::vector<CocoResult> many;
  for (int k = 0; k < 150; ++k) many.push_back(det(2, 2, 500 + k, 300, 10, 10, 0.5 + k / 1000.0));
  EXPECT_EQ(detr::datasets::confusion_matrix(gt, many).counts[2][1], 100);
  // A class named "background" is told apart by its id.
  gt.categories[1].name = "background";
  EXPECT_EQ(detr::datasets::confusion_csv(m).find("background (id"), std::string::npos);
  EXPECT_NE(
      detr::datasets::confusion_csv(detr::datasets::confusion_matrix(gt, dts)).find(",background (id 2),background\n"),
      std::string::npos);
}

TEST(EvalTables, PrCurvesCsvHoldsEveryClassAndAllAtBothIous) {
  const auto gt = three_sizes();
  const auto result = evaluate_bbox(gt, perfect(gt));
  const auto csv = detr::datasets::pr_curves_csv(detr::datasets::per_class_rows(gt.categories, result), result);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "class,id,iou,recall,precision");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 2 * 101);  // cat, dog, all
  EXPECT_NE(csv.find("\ncat,1,0.50,0.00,1\n"), std::string::npos);
  EXPECT_NE(csv.find("\nall,,0.50:0.95,1.00,1\n"), std::string::npos);
}

}  // namespace
