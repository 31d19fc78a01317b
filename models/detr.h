// The DETR detector (upstream models/detr.py: DETR, MLP, build). Registration order and names give
// upstream's state_dict keys: transformer.*, class_embed.*, bbox_embed.layers.N.*, query_embed.weight,
// input_proj.*, backbone.0.body.*, backbone.1.* (learned position embedding only).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/model_config.h"
#include "models/position_encoding.h"
#include "models/transformer.h"
#include "util/misc.h"

namespace detr::models {

// One decoder layer's predictions.
struct Prediction {
  torch::Tensor pred_logits;  // [B, Q, num_classes + 1]; the last class is "no object"
  torch::Tensor pred_boxes;   // [B, Q, 4] normalized cxcywh in [0, 1]
};

struct DetrOutput : Prediction {
  std::vector<Prediction> aux_outputs;  // decoder layers 0..L-2 when aux_loss
  torch::Tensor pred_masks;             // [B, Q, H/4, W/4] logits, segmentation only
};

// What the transformer makes of the last backbone level: the pieces DETRsegm reuses.
struct TransformerPass {
  torch::Tensor src_proj;  // [B, C, h, w] input_proj(features)
  torch::Tensor mask;      // [B, h, w] true = padding
  torch::Tensor hs;        // [L, B, Q, C] every decoder layer, through decoder.norm
  torch::Tensor memory;    // [B, C, h, w] the encoder's output
};

// Multi-layer perceptron with ReLU between layers ("FFN").
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(MLP);

struct DETROptions {
  TORCH_ARG(int64_t, num_classes) = 91;
  TORCH_ARG(int64_t, num_queries) = 100;
  TORCH_ARG(bool, aux_loss) = true;
};

class DETRImpl : public torch::nn::Module {
 public:
  DETRImpl(Joiner backbone, Transformer transformer, DETROptions options);
  DetrOutput forward(const util::NestedTensor& samples);
  // forward's pieces. features: the last backbone level [B, C_bb, h, w] with its mask; pos: its
  // position embedding [B, C, h, w].
  TransformerPass run_transformer(const util::NestedTensor& features, const torch::Tensor& pos);
  // The heads on every decoder layer: the last layer's predictions and, with aux_loss, the others.
  DetrOutput predict(const torch::Tensor& hs);  // hs: [L, B, Q, C]
  // How the backbone's convolutions run (the run's --conv_algorithm; the parity tool's upstream order).
  void set_conv_kernels(const ConvKernels& kernels) { backbone->backbone->set_kernels(kernels); }

  DETROptions options;
  Transformer transformer{nullptr};
  torch::nn::Linear class_embed{nullptr};
  MLP bbox_embed{nullptr};
  torch::nn::Embedding query_embed{nullptr};
  torch::nn::Conv2d input_proj{nullptr};
  Joiner backbone{nullptr};
};
TORCH_MODULE(DETR);

// Upstream build(): backbone, position embedding, transformer and head from the config.
DETR build_model(const ModelConfig& config, bool init_weights = true);

// Parameters that train (requires_grad), as upstream counts n_parameters.
int64_t count_trainable_parameters(const torch::nn::Module& model);

}  // namespace detr::models
