#include "models/build.h"

namespace detr::models {

DetrModel::DetrModel(DETR detr) : detr_(std::move(detr)) {}
DetrModel::DetrModel(DETRsegm segm) : detr_(segm->detr), segm_(std::move(segm)) {}

DetrOutput DetrModel::forward(const util::NestedTensor& samples) const {
  return masks() ? segm_.ptr()->forward(samples) : detr_.ptr()->forward(samples);
}

torch::nn::Module& DetrModel::module() const {
  TORCH_CHECK(!detr_.is_empty(), "DetrModel: no model");
  return masks() ? static_cast<torch::nn::Module&>(*segm_.ptr()) : static_cast<torch::nn::Module&>(*detr_.ptr());
}

DETR& DetrModel::detr() { return detr_; }
const DETR& DetrModel::detr() const { return detr_; }

DetrModel build(const ModelConfig& config, bool freeze_detr, bool init_weights) {
  if (config.masks) return build_segmentation_model(config, freeze_detr, init_weights);
  return build_model(config, init_weights);
}

}  // namespace detr::models
