// The COCO mask codec against pycocotools' answers (committed golden data from
// tests/reference/make_masks.py, plus the optional larger set), and its error contract.
#include "datasets/coco_mask.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/fixtures.h"

namespace {

using nlohmann::json;
namespace dm = detr::datasets;
using dm::MaskLayout;
using dm::Rle;

json load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  return json::parse(in);
}

std::array<double, 4> box_of(const json& v) { return {v[0], v[1], v[2], v[3]}; }

// The compressed counts of the decoded mask, re-encoded (pycocotools: encode(decode(rle))).
std::string mask_counts(const Rle& rle, MaskLayout layout) {
  const auto mask = dm::decode(rle, layout);
  return dm::rle_to_string(dm::encode(mask.data(), rle.height, rle.width, layout));
}

int64_t ones(const std::vector<uint8_t>& mask) { return std::accumulate(mask.begin(), mask.end(), int64_t{0}); }

// Runs f, which must throw std::runtime_error whose message starts with "<field>:".
template <class F>
void expect_field_error(F&& f, const std::string& field) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(field + ":", 0), 0u) << "message does not start with '" << field << ":': " << what;
    return;
  }
  ADD_FAILURE() << "no error; expected one naming " << field;
}

Rle from_segmentation(const std::string& json_text, int64_t h, int64_t w) {
  return dm::rle_from_segmentation(json::parse(json_text), h, w);
}

// ---- golden data: pycocotools' answers -----------------------------------------------------------------

TEST(CocoMask, SegmentationsMatchPycocotools) {
  const auto path = detr::testing::data_dir() / "masks" / "cases.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << "committed golden data missing: " << path;
  const auto doc = load(path);
  int cases = 0, differing = 0;
  for (const auto& c : doc.at("segmentations")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t h = c.at("height"), w = c.at("width");
    const Rle rle = dm::rle_from_segmentation(c.at("segmentation"), h, w);
    const std::string counts = dm::rle_to_string(rle), by_column = mask_counts(rle, MaskLayout::column_major),
                      by_row = mask_counts(rle, MaskLayout::row_major);
    const int64_t mask_area = ones(dm::decode(rle, MaskLayout::row_major));
    EXPECT_EQ(counts, c.at("ann_counts"));
    EXPECT_EQ(dm::area(rle), c.at("ann_area").get<uint64_t>());
    EXPECT_EQ(dm::to_bbox(rle), box_of(c.at("ann_bbox")));
    EXPECT_EQ(by_column, c.at("mask_counts"));
    EXPECT_EQ(by_row, c.at("mask_counts"));
    EXPECT_EQ(mask_area, c.at("mask_area").get<int64_t>());
    EXPECT_EQ(dm::rle_from_string(c.at("ann_counts"), h, w).counts, rle.counts);  // string round trip
    differing += counts != c.at("ann_counts") || dm::area(rle) != c.at("ann_area") ||
                 dm::to_bbox(rle) != box_of(c.at("ann_bbox")) || by_column != c.at("mask_counts") ||
                 by_row != c.at("mask_counts") || mask_area != c.at("mask_area");
    ++cases;
  }
  EXPECT_GT(cases, 0);
  std::cout << "[ masks ] " << cases << " segmentations; " << differing
            << " differ from pycocotools in counts, area, bbox or mask\n";
}

TEST(CocoMask, BoxesMatchFrBbox) {
  const auto doc = load(detr::testing::data_dir() / "masks" / "cases.json");
  for (const auto& c : doc.at("boxes")) {
    SCOPED_TRACE(c.at("box").dump());
    const Rle rle = dm::rle_from_box(box_of(c.at("box")), c.at("height"), c.at("width"));
    EXPECT_EQ(dm::rle_to_string(rle), c.at("counts"));
  }
  EXPECT_EQ(doc.at("boxes").size(), 9u);
}

TEST(CocoMask, MergesMatchPycocotools) {
  const auto doc = load(detr::testing::data_dir() / "masks" / "cases.json");
  for (const auto& c : doc.at("merges")) {
    SCOPED_TRACE(c.at("name").get<std::string>() + (c.at("intersect") ? " intersect" : " union"));
    std::vector<Rle> rles;
    for (const auto& s : c.at("counts")) rles.push_back(dm::rle_from_string(s, c.at("height"), c.at("width")));
    if (!c.value("covers_image", true)) {  // rleMerge stopped at a zero-length run: pixels lost
      expect_field_error([&] { dm::merge(rles); }, "merge[1]");
      continue;
    }
    EXPECT_EQ(dm::rle_to_string(dm::merge(rles, c.at("intersect"))), c.at("expected"));
  }
}

TEST(CocoMask, IouMatchesPycocotools) {
  const auto doc = load(detr::testing::data_dir() / "masks" / "cases.json");
  double max_dev = 0;
  int entries = 0;
  for (const auto& c : doc.at("ious")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto rles = [](const json& list) {
      std::vector<Rle> out;
      for (const auto& r : list) out.push_back(dm::rle_from_string(r.at("counts"), r.at("size")[0], r.at("size")[1]));
      return out;
    };
    const auto dt = rles(c.at("dt")), gt = rles(c.at("gt"));
    const auto crowd_flags = c.at("iscrowd").get<std::vector<int>>();
    const std::vector<bool> crowd(crowd_flags.begin(), crowd_flags.end());
    const auto got = dm::iou(dt, gt, crowd);
    ASSERT_EQ(got.size(), dt.size() * gt.size());
    for (size_t d = 0; d < dt.size(); ++d) {
      for (size_t g = 0; g < gt.size(); ++g) {
        const double want = c.at("expected")[d][g];
        EXPECT_EQ(got[d * gt.size() + g], want) << "dt " << d << ", gt " << g;
        max_dev = std::max(max_dev, std::abs(got[d * gt.size() + g] - want));
        ++entries;
      }
    }
  }
  EXPECT_GT(entries, 20);
  std::cout << "[ masks ] " << entries << " iou entries; max |iou - pycocotools| = " << max_dev << "\n";
}

// Every segmentation on which COCO.annToRLE raises is an error here too, naming the segmentation.
TEST(CocoMask, ThrowsWherePycocotoolsRaises) {
  const auto doc = load(detr::testing::data_dir() / "masks" / "cases.json");
  for (const auto& c : doc.at("raises")) {
    SCOPED_TRACE(c.at("name").get<std::string>() + " (pycocotools: " + c.at("error").get<std::string>() + ")");
    try {
      dm::rle_from_segmentation(c.at("segmentation"), c.at("height"), c.at("width"));
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("segmentation", 0), 0u) << e.what();
    }
  }
  EXPECT_GE(doc.at("raises").size(), 10u);
}

// read_segmentation (what a dataset keeps) then segmentation_rle (annToRLE on it) is rle_from_segmentation:
// the same masks, and an error wherever pycocotools raises (for [] only at segmentation_rle: a dataset
// keeps CVAT's [] as "no segmentation").
TEST(CocoMask, ReadThenAnnToRleIsAnnToRle) {
  const auto doc = load(detr::testing::data_dir() / "masks" / "cases.json");
  int cases = 0;
  for (const auto& c : doc.at("segmentations")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t h = c.at("height"), w = c.at("width");
    const dm::Segmentation kept = dm::read_segmentation(c.at("segmentation"), h, w);
    EXPECT_EQ(kept.polygons.empty(), kept.rle.has_value());
    EXPECT_EQ(dm::rle_to_string(dm::segmentation_rle(kept, h, w)), c.at("ann_counts"));
    ++cases;
  }
  for (const auto& c : doc.at("raises")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t h = c.at("height"), w = c.at("width");
    try {
      dm::segmentation_rle(dm::read_segmentation(c.at("segmentation"), h, w), h, w);
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("segmentation", 0), 0u) << e.what();
    }
    ++cases;
  }
  EXPECT_GT(cases, 20);
}

TEST(CocoMask, ReadSegmentationKeepsPolygonsWithoutAnImageSize) {
  const auto kept = dm::read_segmentation(json::parse("[[1, 1, 5, 1, 5, 5], [0, 0, 1]]"), 0, 0);
  ASSERT_EQ(kept.polygons.size(), 2u);
  EXPECT_EQ(kept.polygons[1], (std::vector<double>{0, 0, 1}));
  EXPECT_EQ(dm::area(dm::segmentation_rle(kept, 10, 8)), dm::area(from_segmentation("[[1, 1, 5, 1, 5, 5]]", 10, 8)));
  EXPECT_TRUE(dm::read_segmentation(json::parse("[]"), 0, 0).empty());
  EXPECT_TRUE(dm::read_segmentation(json(), 0, 0).empty());
  expect_field_error([] { dm::read_segmentation(json::parse(R"({"counts": [80], "size": [10, 8]})"), 0, 0); },
                     "segmentation");
  expect_field_error([] { dm::segmentation_rle(dm::Segmentation{}, 10, 8); }, "segmentation");
  expect_field_error(
      [] { dm::segmentation_rle(dm::read_segmentation(json::parse("[[1, 1, 5, 1, 5, 5]]"), 0, 0), 0, 0); }, "image");
}

// The larger optional set: the mask pycocotools decodes (re-encoded), its area and toBbox.
TEST(CocoMaskOptionalFixtures, MatchesPycocotoolsOnFixtureCases) {
  const auto path = detr::testing::fixtures_dir() / "masks" / "cases.json";
  DETR_REQUIRE_FIXTURE(path);
  const auto doc = load(path);
  int cases = 0, differing = 0;
  for (const auto& c : doc.at("cases")) {
    SCOPED_TRACE(std::to_string(cases) + " " + c.at("source").get<std::string>());
    const Rle rle = dm::rle_from_segmentation(c.at("segmentation"), c.at("height"), c.at("width"));
    const std::string counts = mask_counts(rle, MaskLayout::column_major);
    EXPECT_EQ(counts, c.at("expected_counts"));
    EXPECT_EQ(dm::area(rle), c.at("expected_area").get<uint64_t>());
    EXPECT_EQ(dm::to_bbox(rle), box_of(c.at("expected_bbox")));
    differing += counts != c.at("expected_counts") || dm::area(rle) != c.at("expected_area") ||
                 dm::to_bbox(rle) != box_of(c.at("expected_bbox"));
    ++cases;
  }
  EXPECT_GT(cases, 0);
  std::cout << "[ masks ] fixtures: " << cases << " cases; " << differing << " differ from pycocotools\n";
}

// ---- behaviour ------------------------------------------------------------------------------------------

TEST(CocoMask, LayoutsIndexPixelsAsDocumented) {
  // 2 x 3 mask, row-major: [[1, 0, 1], [1, 1, 0]]; column-major runs: 0, 3, 1, 1, 1 (sum 6).
  const std::vector<uint8_t> row_major{1, 0, 1, 1, 1, 0};
  const Rle rle = dm::encode(row_major.data(), 2, 3, MaskLayout::row_major);
  EXPECT_EQ(rle.counts, (std::vector<uint32_t>{0, 2, 1, 2, 1}));
  EXPECT_EQ(dm::decode(rle, MaskLayout::row_major), row_major);
  EXPECT_EQ(dm::decode(rle, MaskLayout::column_major), (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));
  EXPECT_EQ(dm::area(rle), 4u);
  EXPECT_EQ(dm::to_bbox(rle), (std::array<double, 4>{0, 0, 3, 2}));
  const std::vector<uint8_t> bytes{255, 0, 7, 1, 1, 0};  // any nonzero byte is foreground
  EXPECT_EQ(dm::encode(bytes.data(), 2, 3, MaskLayout::row_major).counts, rle.counts);
}

TEST(CocoMask, BoxIsThePolygonOfItsCorners) {
  const Rle box = dm::rle_from_box({1.5, 2.25, 4.0, 3.5}, 10, 12);
  const Rle poly = dm::rle_from_polygons({{1.5, 2.25, 1.5, 5.75, 5.5, 5.75, 5.5, 2.25}}, 10, 12);
  EXPECT_EQ(box.counts, poly.counts);
  EXPECT_EQ(dm::area(dm::rle_from_box({0, 0, 12, 10}, 10, 12)), 120u);
}

TEST(CocoMask, UncompressedKeepsItsCountsAsGiven) {
  const Rle rle = dm::rle_from_uncompressed({2, 0, 3, 4, 0, 6}, 5, 3);
  EXPECT_EQ(rle.counts, (std::vector<uint32_t>{2, 0, 3, 4, 0, 6}));
  EXPECT_EQ(dm::rle_to_string(rle), "2034M2");  // annToRLE's string for these counts
  // maskApi's toBbox counts the pixel before a zero-length run of ones: column 0 although it is empty.
  EXPECT_EQ(dm::to_bbox(rle), (std::array<double, 4>{0, 0, 3, 5}));
}

// Large declared sizes cost nothing until decode: a 20000 x 26000 compressed RLE of three runs.
TEST(CocoMask, LargeImagesStayCompact) {
  const int64_t h = 20000, w = 26000;
  const Rle runs = dm::rle_from_uncompressed({100000000, 5, h * w - 100000005}, h, w);
  const std::string s = dm::rle_to_string(runs);
  EXPECT_LT(s.size(), 20u);
  const Rle rle = dm::rle_from_segmentation(json{{"size", {h, w}}, {"counts", s}}, h, w);
  EXPECT_EQ(rle.counts, runs.counts);
  EXPECT_EQ(dm::area(rle), 5u);
  EXPECT_EQ(dm::to_bbox(rle), (std::array<double, 4>{5000, 0, 1, 5}));
  const Rle poly = from_segmentation("[[10, 10, 25990, 10, 25990, 19990, 10, 19990]]", h, w);
  EXPECT_EQ(dm::area(poly), 25980u * 19980u);
  EXPECT_LT(poly.counts.size(), 2u * 26000u + 2u);
}

// ---- errors: one per rule, each naming the field -------------------------------------------------------

struct BadSegmentation {
  const char* json;   // on a 10 x 8 image
  const char* field;  // the field the message must start with
};

void expect_errors(const std::vector<BadSegmentation>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    expect_field_error([&] { from_segmentation(c.json, 10, 8); }, c.field);
  }
}

TEST(CocoMaskErrors, NotPolygonsNorRle) {
  expect_errors({
      {"5", "segmentation"},
      {"null", "segmentation"},
      {R"("abc")", "segmentation"},
      {"[]", "segmentation"},
      {"[[1, 2, 3, 4]]", "segmentation[0]"},  // pycocotools: a box, then a TypeError
      {"[[1, 2, 3]]", "segmentation[0]"},
      {"[1, 2, 3, 4, 5, 6]", "segmentation[0]"},
      {R"([[1, 1, 5, 1, 5, 5], {"counts": [80], "size": [10, 8]}])", "segmentation[1]"},
      {R"([{"counts": [80], "size": [10, 8]}, [1, 1, 5, 1, 5, 5]])", "segmentation[1]"},
      {R"([{"counts": [80], "size": [10, 8], "a": 1, "b": 2}])", "segmentation[0]"},
      {R"([{"counts": "`2", "size": [10, 8]}])", "segmentation[0].counts"},
      {R"({"counts": [80]})", "segmentation"},
      {R"({"size": [10, 8]})", "segmentation"},
      {R"({"counts": 80, "size": [10, 8]})", "segmentation.counts"},
  });
  expect_field_error([] { dm::rle_from_polygons({}, 10, 8); }, "polygons");
  expect_field_error([] { dm::rle_from_polygons({{1, 2, 3, 4}, {1, 1, 5, 1, 5, 5}}, 10, 8); }, "polygons[0]");
}

TEST(CocoMaskErrors, PolygonCoordinates) {
  expect_errors({
      {R"([[1, 2, "3", 4, 5, 6]])", "segmentation[0][2]"},  // numpy would parse the string
      {"[[true, 2, 3, 4, 5, 6]]", "segmentation[0][0]"},    // numpy would take true as 1
      {"[[1, 2, 3, 4, 5, [6]]]", "segmentation[0][5]"},
      {"[[1, 2, 3, 4, 5, 6], 7]", "segmentation[1]"},
      // pycocotools would allocate gigabytes for this boundary (8 bytes a point); refused here.
      {"[[0, 0, 9e7, 0, 9e7, 9e7]]", "segmentation[0]"},
      {"[[0, 0, 2e8, 0, 5, 5]]", "segmentation[0][2]"},
  });
  const double nan = std::nan(""), inf = INFINITY;
  const json with_nan = json::array({json::array({1.0, 2.0, nan, 4.0, 5.0, 6.0})});
  expect_field_error([&] { dm::rle_from_segmentation(with_nan, 10, 8); }, "segmentation[0][2]");
  expect_field_error(
      [&] {
        dm::rle_from_polygons({{1, 2, 3, 4, 5, 6}, {1, inf, 3, 4, 5, 6}}, 10, 8);
      },
      "polygons[1][1]");
  expect_field_error([] { dm::rle_from_polygons({{1, 2, 3, 4, 5, -2e8}}, 10, 8); }, "polygons[0][5]");
  expect_field_error([&] { dm::rle_from_box({0, 0, inf, 1}, 10, 8); }, "box[2]");
}

TEST(CocoMaskErrors, RleSizeAndCounts) {
  expect_errors({
      {R"({"counts": [80], "size": [8, 10]})", "segmentation.size"},
      {R"({"counts": [80], "size": [10]})", "segmentation.size"},
      {R"({"counts": [80], "size": ["10", 8]})", "segmentation.size"},
      {R"({"counts": "`2", "size": [10, 9]})", "segmentation.size"},
      {R"({"counts": [3, 76], "size": [10, 8]})", "segmentation.counts"},  // 79 pixels
      {R"({"counts": [3, -1, 78], "size": [10, 8]})", "segmentation.counts[1]"},
      {R"({"counts": [3.5, 76.5], "size": [10, 8]})", "segmentation.counts[0]"},
      {R"({"counts": [4294967296, 80], "size": [10, 8]})", "segmentation.counts[0]"},
      {R"({"counts": ["3", 77], "size": [10, 8]})", "segmentation.counts[0]"},
      {R"({"counts": "", "size": [10, 8]})", "segmentation.counts"},
  });
  // More runs than pixels + 1: only zero-length runs can make that, and rleMerge overruns its buffer on them.
  expect_field_error([] { from_segmentation(R"({"counts": [0, 0, 0, 1], "size": [1, 1]})", 1, 1); },
                     "segmentation.counts");
  expect_field_error([] { dm::rle_from_uncompressed({40, 41}, 10, 8); }, "counts");
  expect_field_error([] { dm::rle_from_uncompressed({-1, 81}, 10, 8); }, "counts[0]");
}

TEST(CocoMaskErrors, CompressedStrings) {
  EXPECT_EQ(dm::rle_from_string("`2", 10, 8).counts, (std::vector<uint32_t>{80}));
  expect_field_error([] { dm::rle_from_string("`2 ", 10, 8); }, "counts");      // ' ' is not in '0'..'o'
  expect_field_error([] { dm::rle_from_string("`2p", 10, 8); }, "counts");      // 'p' neither
  expect_field_error([] { dm::rle_from_string("`", 10, 8); }, "counts");        // ends inside a value
  expect_field_error([] { dm::rle_from_string("PPPPPP0", 10, 8); }, "counts");  // 7 characters to a value
  expect_field_error([] { dm::rle_from_string("0000O", 10, 8); }, "counts");    // a negative run
  expect_field_error([] { dm::rle_from_string("11", 10, 8); }, "counts");       // sums to 2, not 80
  // Six characters are the most a value takes: the largest mask round-trips.
  const int64_t h = 233 * 1103, w = 2089;
  ASSERT_EQ(h * w, dm::kMaxMaskPixels);
  const Rle full = dm::rle_from_uncompressed({0, h * w}, h, w);
  EXPECT_EQ(dm::rle_from_string(dm::rle_to_string(full), h, w).counts, full.counts);
}

TEST(CocoMaskErrors, AbsurdSizes) {
  expect_field_error([] { from_segmentation("[[1, 1, 5, 1, 5, 5]]", 0, 8); }, "image");
  expect_field_error([] { from_segmentation("[[1, 1, 5, 1, 5, 5]]", 10, -8); }, "image");
  expect_field_error([] { from_segmentation("[[1, 1, 5, 1, 5, 5]]", 1 << 20, 1 << 20); }, "image");
  expect_field_error([] { from_segmentation("[[1, 1, 5, 1, 5, 5]]", int64_t{1} << 62, 4); }, "image");
  expect_field_error([] { dm::rle_from_string("0", 16384, 32768); }, "image");
  expect_field_error([] { dm::encode(nullptr, 0, 3, MaskLayout::row_major); }, "image");
}

TEST(CocoMaskErrors, OperationsCheckTheirMasks) {
  const Rle a = dm::rle_from_uncompressed({3, 77}, 10, 8), b = dm::rle_from_uncompressed({3, 77}, 8, 10);
  expect_field_error([] { dm::merge({}); }, "merge");
  expect_field_error([&] { dm::merge({a, b}); }, "merge[1]");
  expect_field_error([&] { dm::iou({a}, {a}, {}); }, "iou");
  Rle bad = a;
  bad.counts.push_back(1);  // 81 pixels in an 80-pixel mask: pycocotools would write past its buffer
  expect_field_error([&] { dm::decode(bad, MaskLayout::row_major); }, "rle.counts");
  expect_field_error([&] { dm::to_bbox(bad); }, "rle.counts");
  expect_field_error([&] { dm::rle_to_string(bad); }, "rle.counts");
  expect_field_error([&] { dm::iou({bad}, {a}, {false}); }, "dt[0].counts");
  expect_field_error([&] { dm::merge({a, bad}); }, "merge[1].counts");
  // A list of uncompressed RLEs whose zero-length runs make rleMerge stop early (pycocotools returns a
  // mask of fewer pixels than the image): refused.
  const char* zero_runs = R"([{"counts": [2, 0, 3], "size": [5, 1]}, {"counts": [2, 0, 3], "size": [5, 1]}])";
  expect_field_error([&] { from_segmentation(zero_runs, 5, 1); }, "segmentation[1]");
}

}  // namespace
