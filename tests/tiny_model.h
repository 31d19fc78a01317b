// The tiny DETR the training tests run (R18, hidden 32, 1+2 layers, 8 queries, no dropout): fast on
// CPU, yet every part of the network, matcher and losses is there.
#pragma once
#include "models/model_config.h"

namespace detr::testing {

inline models::ModelConfig tiny_train_config(int64_t num_classes = 4) {
  models::ModelConfig c;
  c.backbone = "resnet18";
  c.hidden_dim = 32;
  c.nheads = 2;
  c.enc_layers = 1;
  c.dec_layers = 2;
  c.dim_feedforward = 64;
  c.num_queries = 8;
  c.num_classes = num_classes;
  c.dropout = 0;
  return c;
}

}  // namespace detr::testing
