#include "datasets/coco_detection.h"

#include <algorithm>

#include "datasets/coco_mask.h"
#include "datasets/image_io.h"

namespace detr::datasets {

CocoDetection::CocoDetection(CocoDataset data, TransformConfig config, bool train, bool masks)
    : data_(std::move(data)), config_(std::move(config)), train_(train), masks_(masks) {}

namespace {
// upstream ConvertCocoPolysToMask's masks: each kept object's segmentation as pycocotools decodes it
// (annToRLE; a CVAT rectangle's empty segmentation is its filled box), kept as RLEs: the transforms
// decode only the pixels of the final size (transforms.h).
std::vector<Rle> object_masks(const CocoImageRecord& rec, const std::vector<size_t>& kept, int64_t h, int64_t w) {
  std::vector<Rle> rles;
  rles.reserve(kept.size());
  for (size_t k : kept) try {
      rles.push_back(object_rle(rec.objects[k], h, w));
    } catch (const std::exception& e) {
      throw std::runtime_error(rec.path.string() + ": image id " + std::to_string(rec.id) + ", " + e.what());
    }
  return rles;
}

std::runtime_error naming(const CocoImageRecord& rec, const std::exception& e) {
  return std::runtime_error(rec.path.string() + ": image id " + std::to_string(rec.id) + ": " + e.what());
}
}  // namespace

Sample CocoDetection::load(size_t index) const {
  const auto& rec = data_.images.at(index);
  auto image = to_chw_float(load_image_rgb(rec.path, data_.max_image_pixels));
  const int64_t h = image.size(1), w = image.size(2);  // the decoded size, as upstream (PIL's)
  if (w != rec.width || h != rec.height)               // boxes annotated on another image would train silently
    throw std::runtime_error(rec.path.string() + ": image id " + std::to_string(rec.id) + " is declared " +
                             std::to_string(rec.width) + "x" + std::to_string(rec.height) + " but decodes as " +
                             std::to_string(w) + "x" + std::to_string(h));
  const auto clean = convert_objects(rec.objects, w, h);
  const auto n = static_cast<int64_t>(clean.labels.size());
  util::Target t;
  t.boxes =
      n ? torch::from_blob(const_cast<std::array<float, 4>*>(clean.boxes_xyxy.data()), {n, 4}, torch::kFloat).clone()
        : torch::zeros({0, 4}, torch::kFloat);
  t.labels = torch::tensor(clean.labels, torch::kLong);
  t.area = torch::tensor(clean.areas, torch::kFloat);
  t.iscrowd = torch::zeros({n}, torch::kLong);
  t.image_id = torch::tensor({rec.id}, torch::kLong);
  t.orig_size = torch::tensor({h, w}, torch::kLong);
  t.size = torch::tensor({h, w}, torch::kLong);
  Sample s{image, t};
  if (masks_) s.mask_rles = object_masks(rec, clean.kept, h, w);
  return s;
}

Sample CocoDetection::get(size_t index, uint64_t seed) const {
  auto s = load(index);
  try {
    if (!train_) return val_transforms(std::move(s), config_);
    Rng rng(seed);
    return train_transforms(std::move(s), config_, rng);
  } catch (const c10::Error& e) {
    throw naming(data_.images.at(index), std::runtime_error(e.what_without_backtrace()));
  } catch (const std::runtime_error& e) {
    throw naming(data_.images.at(index), e);
  }
}

}  // namespace detr::datasets
