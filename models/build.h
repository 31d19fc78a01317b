// The model a run trains, evaluates or serves (upstream models/detr.py build()): DETR, or with
// --masks DETRsegm around one. One handle for both, so the engine, checkpoints and inference never ask
// which.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "models/detr.h"
#include "models/model_config.h"
#include "models/segmentation.h"

namespace detr::models {

class DetrModel {
 public:
  DetrModel() = default;
  DetrModel(DETR detr);      // NOLINT: a box model is a DetrModel
  DetrModel(DETRsegm segm);  // NOLINT: so is a segmentation model

  // DETR's outputs; a segmentation model's also carry pred_masks.
  DetrOutput forward(const util::NestedTensor& samples) const;
  torch::nn::Module& module() const;  // parameters, buffers, train()/eval(), to(), the state dict
  DETR& detr();                       // the box model (DETRsegm's `detr`)
  const DETR& detr() const;
  bool masks() const { return !segm_.is_empty(); }
  void set_conv_kernels(const ConvKernels& kernels) { detr_->set_conv_kernels(kernels); }
  explicit operator bool() const { return !detr_.is_empty(); }

 private:
  DETR detr_{nullptr};
  DETRsegm segm_{nullptr};
};

// Upstream build(): DETR from the config; with config.masks, DETRsegm around it (freeze_detr: the
// two-stage recipe, only the mask head trains). init_weights false: every weight is loaded next
// (inference), so the backbone's and the transformer's second init passes are skipped.
DetrModel build(const ModelConfig& config, bool freeze_detr = false, bool init_weights = true);

}  // namespace detr::models
