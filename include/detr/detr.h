// detr-cpp's public API for embedding: build a DETR, load weights, run it, train it.
//
//   auto model = detr::models::build_model(config);                  // models/model_config.h
//   detr::serialization::load_state_dict(*model, path);               // any torch.save file
//   auto out = model->forward(samples);                               // util::NestedTensor in
//   auto detections = detr::models::post_process(out, target_sizes);  // scores, labels, boxes
//
// Include paths: the repository root (headers sit beside their sources).
#pragma once

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/coco_eval.h"
#include "datasets/loader.h"
#include "datasets/transforms.h"
#include "models/detr.h"
#include "models/matcher.h"
#include "models/model_config.h"
#include "models/post_process.h"
#include "models/set_criterion.h"
#include "src/checkpoint.h"
#include "src/engine.h"
#include "src/optimizer.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"
#include "src/util/box_ops.h"
#include "src/util/misc.h"
