// datasets/cvat_policy.h: CVAT's RLE crowd masks as objects, boxes against their masks.
#include <gtest/gtest.h>

#include "datasets/coco.h"
#include "datasets/cvat_policy.h"

namespace {

using namespace detr::datasets;

// One 20x10 image: a polygon whose box is 3 px off, a rectangle (empty segmentation) and a CVAT brush
// mask (uncompressed RLE, iscrowd 1).
CocoDataset cvat_like(bool attributes) {
  const std::string attr = attributes ? R"(, "attributes": {"occluded": false})" : "";
  const std::string json = R"({"images": [{"id": 1, "width": 20, "height": 10, "file_name": "a.jpg"}],
    "categories": [{"id": 1, "name": "car"}],
    "annotations": [
      {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 9, 6], "area": 24, "iscrowd": 0,
       "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]])" +
                           attr + R"(},
      {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 1, 5, 5], "area": 25, "iscrowd": 0,
       "segmentation": [])" +
                           attr + R"(},
      {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 10], "area": 10, "iscrowd": 1,
       "segmentation": {"counts": [0, 10, 190], "size": [10, 20]})" +
                           attr + R"(}]})";
  return parse_coco_annotations(json, "cvat.json");
}

TEST(CvatPolicy, CrowdMasksAreObjectsInCvatExports) {
  auto cvat = cvat_like(true);
  EXPECT_TRUE(cvat.cvat_attributes);
  const auto r = apply_policy(cvat, {});
  EXPECT_EQ(r.crowd_as_objects, 1);
  EXPECT_FALSE(cvat.images[0].objects[2].iscrowd);
  EXPECT_NE(r.summary().find("1 RLE crowd annotations"), std::string::npos) << r.summary();

  auto plain = cvat_like(false);  // not CVAT's: upstream's rule
  EXPECT_EQ(apply_policy(plain, {}).crowd_as_objects, 0);
  EXPECT_TRUE(plain.images[0].objects[2].iscrowd);
  auto forced = cvat_like(false);
  EXPECT_EQ(apply_policy(forced, {CrowdPolicy::kObjects}).crowd_as_objects, 1);
  auto ignored = cvat_like(true);
  EXPECT_EQ(apply_policy(ignored, {CrowdPolicy::kIgnore}).crowd_as_objects, 0);
  EXPECT_THROW(parse_crowd_policy("some"), std::invalid_argument);
}

TEST(CvatPolicy, BoxesAgainstTheirMasks) {
  auto data = cvat_like(true);
  AnnotationPolicy check{CrowdPolicy::kIgnore, false, true};
  const auto r = apply_policy(data, check);
  EXPECT_EQ(r.boxes_checked, 2);  // the polygon and the brush mask; the rectangle is its own mask
  EXPECT_EQ(r.boxes_disagreeing, 1);
  std::printf("%s\n", r.summary().c_str());
  EXPECT_NE(r.worst.find("annotation id 1"), std::string::npos) << r.worst;
  EXPECT_EQ(data.images[0].objects[0].bbox[2], 9);  // only reported

  auto fixed = cvat_like(true);
  const auto f = apply_policy(fixed, {CrowdPolicy::kIgnore, true, false});
  EXPECT_GE(f.boxes_replaced, 1);
  const auto& box = fixed.images[0].objects[0].bbox;  // pycocotools' toBbox of the polygon's mask
  std::printf("box from mask: [%g, %g, %g, %g]\n", box[0], box[1], box[2], box[3]);
  EXPECT_EQ(box[0], 2);
  EXPECT_EQ(box[1], 2);
  EXPECT_LT(box[2], 9);
  EXPECT_NE(f.summary().find("replaced"), std::string::npos) << f.summary();
}

}  // namespace
