// COCO bbox evaluator: pycocotools' COCOeval results on the committed golden data (and the optional larger
// set when present), plus small hand-made cases.
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
#include "tests/fixtures.h"

namespace {

using detr::datasets::CocoAnnotation;
using detr::datasets::CocoEvalResult;
using detr::datasets::CocoGroundTruth;
using detr::datasets::evaluate_bbox;

// ---- golden data: pycocotools' numbers ----------------------------------------------------------------

// Every case_NN/ of a golden directory ({gt,dt,expected}.json) gives pycocotools' stats and per-category
// AP; prints the largest deviations.
void expect_pycocotools_cases(const std::filesystem::path& dir) {
  double max_stat_dev = 0, max_ap_dev = 0;
  int cases = 0;
  for (int n = 0;; ++n) {
    char name[16];
    std::snprintf(name, sizeof name, "case_%02d", n);
    const auto case_dir = dir / name;
    if (!std::filesystem::exists(case_dir)) break;
    SCOPED_TRACE(case_dir.string());
    const auto gt = detr::datasets::load_coco_ground_truth((case_dir / "gt.json").string());
    const auto dt = detr::datasets::load_coco_results((case_dir / "dt.json").string(), gt);
    const CocoEvalResult result = evaluate_bbox(gt, dt);
    const auto expected = nlohmann::json::parse(std::ifstream(case_dir / "expected.json"));

    ASSERT_EQ(expected["stats"].size(), 12u);
    for (int i = 0; i < 12; ++i) {
      const double want = expected["stats"][i].get<double>();
      if (want == -1.0) {
        EXPECT_EQ(result.stats[i], -1.0) << "stat " << i;
      }
      EXPECT_NEAR(result.stats[i], want, 1e-6) << "stat " << i;
      max_stat_dev = std::max(max_stat_dev, std::abs(result.stats[i] - want));
    }
    const auto& want_ap = expected["per_category_ap"];
    EXPECT_EQ(result.per_category_ap.size(), want_ap.size());
    for (const auto& [cat, ap] : result.per_category_ap) {
      const auto it = want_ap.find(std::to_string(cat));
      ASSERT_NE(it, want_ap.end()) << "category " << cat;
      EXPECT_NEAR(ap, it->get<double>(), 1e-6) << "category " << cat;
      max_ap_dev = std::max(max_ap_dev, std::abs(ap - it->get<double>()));
    }
    ++cases;
  }
  EXPECT_GT(cases, 0);
  std::cout << "[ cocoeval ] " << dir.string() << ": " << cases << " cases; max |stat - pycocotools| = "
            << max_stat_dev << ", max |per-category AP - pycocotools| = " << max_ap_dev << "\n";
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

// ---- hand-made cases --------------------------------------------------------------------------------

CocoAnnotation box(int64_t id, int64_t image, int64_t cat, double x, double y, double w, double h,
                   bool crowd = false) {
  CocoAnnotation a;
  a.id = id;
  a.image_id = image;
  a.category_id = cat;
  a.bbox = {x, y, w, h};
  a.area = w * h;
  a.iscrowd = crowd;
  return a;
}

CocoAnnotation det(int64_t image, int64_t cat, double x, double y, double w, double h, double score) {
  CocoAnnotation d = box(0, image, cat, x, y, w, h);
  d.score = score;
  return d;
}

// Images 1..3 and categories 1, 2; one small, one medium and one large box, one per image.
CocoGroundTruth three_sizes() {
  CocoGroundTruth gt;
  gt.images = {{1, 640, 480}, {2, 640, 480}, {3, 640, 480}};
  gt.categories = {{1, "cat"}, {2, "dog"}};
  gt.annotations = {box(1, 1, 1, 10, 10, 20, 20),    // small (400)
                    box(2, 2, 1, 50, 50, 60, 60),    // medium (3600)
                    box(3, 3, 2, 100, 100, 200, 150)};  // large (30000)
  return gt;
}

std::vector<CocoAnnotation> perfect(const CocoGroundTruth& gt) {
  std::vector<CocoAnnotation> dts;
  for (const auto& a : gt.annotations)
    dts.push_back(det(a.image_id, a.category_id, a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3], 0.9));
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
  gt.annotations.push_back(box(4, 1, 1, 300, 300, 20, 20));  // a second small box on image 1
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
  EXPECT_DOUBLE_EQ(result.stats[5], 0.0);   // large: only category 2 has one
  EXPECT_DOUBLE_EQ(result.stats[3], 1.0);   // small
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
  CocoGroundTruth gt;
  gt.images = {{1}, {2}};
  gt.categories = {{1, "a"}};
  gt.annotations = {box(1, 1, 1, 10, 10, 50, 50)};
  // A false positive on the empty image ranked first halves precision at every recall: AP 0.5.
  auto result = evaluate_bbox(gt, {det(1, 1, 10, 10, 50, 50, 0.9), det(2, 1, 0, 0, 50, 50, 0.95)});
  EXPECT_DOUBLE_EQ(result.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(result.stats[8], 1.0);
  // Ranked last it costs nothing.
  result = evaluate_bbox(gt, {det(1, 1, 10, 10, 50, 50, 0.9), det(2, 1, 0, 0, 50, 50, 0.5)});
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
}

TEST(CocoEval, CrowdRegionsIgnoreDetectionsInside) {
  CocoGroundTruth gt;
  gt.images = {{1}};
  gt.categories = {{1, "person"}};
  gt.annotations = {box(1, 1, 1, 0, 0, 40, 40), box(2, 1, 1, 100, 100, 300, 300, /*crowd=*/true)};
  // Against a crowd box IoU = intersection / detection area, so small boxes inside it match it
  // (several may) and are ignored instead of counted as false positives.
  const std::vector<CocoAnnotation> dts = {det(1, 1, 150, 150, 20, 20, 0.99), det(1, 1, 200, 200, 30, 30, 0.98),
                                           det(1, 1, 0, 0, 40, 40, 0.5)};
  auto result = evaluate_bbox(gt, dts);
  EXPECT_DOUBLE_EQ(result.stats[0], 1.0);
  EXPECT_DOUBLE_EQ(result.stats[8], 1.0);

  gt.annotations[1].iscrowd = false;  // now it is an object that nothing matches, and they are misses
  result = evaluate_bbox(gt, dts);
  EXPECT_LT(result.stats[0], 0.5);
  EXPECT_DOUBLE_EQ(result.stats[8], 0.5);
}

TEST(CocoEval, DetectionsOutsideTheAreaRangeAreIgnored) {
  CocoGroundTruth gt;
  gt.images = {{1}};
  gt.categories = {{1, "a"}};
  gt.annotations = {box(1, 1, 1, 0, 0, 20, 20)};  // small
  // A large unmatched detection with a higher score does not hurt AP small, but does hurt AP all.
  const auto result = evaluate_bbox(gt, {det(1, 1, 0, 0, 20, 20, 0.5), det(1, 1, 200, 200, 100, 100, 0.9)});
  EXPECT_DOUBLE_EQ(result.stats[3], 1.0);
  EXPECT_DOUBLE_EQ(result.stats[0], 0.5);
  EXPECT_EQ(result.stats[4], -1.0);  // no medium ground truth
  EXPECT_EQ(result.stats[5], -1.0);
}

TEST(CocoEval, GroundTruthIdZeroNeverCountsAsMatched) {
  // pycocotools stores the matched gt id in dtMatches, so id 0 reads as "no match".
  CocoGroundTruth gt;
  gt.images = {{1}};
  gt.categories = {{1, "a"}};
  gt.annotations = {box(0, 1, 1, 0, 0, 50, 50)};
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

TEST(CocoEval, ResultsGetLoadResIdsAndAreas) {
  const auto dts = detr::datasets::parse_coco_results(
      R"([{"image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.25, "id": 77}])", "dt.json",
      three_sizes());
  ASSERT_EQ(dts.size(), 1u);
  EXPECT_EQ(dts[0].id, 1);
  EXPECT_EQ(dts[0].category_id, 5);  // unknown categories are kept; evaluation ignores them
  EXPECT_DOUBLE_EQ(dts[0].area, 12.0);
  EXPECT_DOUBLE_EQ(dts[0].score, 0.25);
  EXPECT_FALSE(dts[0].iscrowd);
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
  using detr::datasets::parse_coco_ground_truth;
  using detr::datasets::parse_coco_results;
  const auto gt_error = [](const char* text) { return error_of([&] { parse_coco_ground_truth(text, "gt.json"); }); };
  EXPECT_EQ(gt_error(R"({"images": [], "categories": []})"), "gt.json: missing field 'annotations'");
  EXPECT_NE(gt_error(R"({"images": [)").find("gt.json: invalid JSON"), std::string::npos);
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]})"),
            "gt.json: annotations[0] (id 5): missing field 'area'");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "area": 1}]})"),
            "gt.json: annotations[0] (id 5): field 'bbox' must be [x, y, width, height] numbers, got [0,0,1]");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                        "annotations": [{"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1}]})"),
            "gt.json: annotations[0] (id 5): image_id 2 is not in images");
  EXPECT_EQ(gt_error(R"({"images": [{"id": 1}, {"id": 1}], "categories": [], "annotations": []})"),
            "gt.json: images[1] (id 1): duplicate image id");
  EXPECT_EQ(gt_error(R"({"images": [{"id": "a"}], "categories": [], "annotations": []})"),
            "gt.json: images[0]: field 'id' must be an integer within int64, got \"a\"");

  const auto gt = three_sizes();
  const auto dt_error = [&](const char* text) { return error_of([&] { parse_coco_results(text, "dt.json", gt); }); };
  EXPECT_EQ(dt_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])"),
            "dt.json: results[0]: missing field 'score'");
  EXPECT_EQ(dt_error(R"({"annotations": []})"), "dt.json: expected a JSON array of results");
  EXPECT_EQ(dt_error(R"([3])"), "dt.json: results[0]: expected a JSON object");

  EXPECT_EQ(error_of([] { detr::datasets::load_coco_ground_truth("/nonexistent/gt.json"); }),
            "/nonexistent/gt.json: cannot open file");
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

}  // namespace
