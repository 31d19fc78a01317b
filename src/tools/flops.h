// The arithmetic of DETR, counted layer by layer as upstream's network computes it (direct
// convolutions and matrix products, 2 FLOPs per multiply-add; element-wise work, softmax and
// normalisation not counted, as FLOP counters such as fvcore do): the numerator of model FLOP
// utilisation. It is the same whatever kernels run: Winograd convolutions do fewer multiplications,
// so they can exceed 100% of a machine's matrix-product peak.
#pragma once
#include <cstdint>

#include "models/model_config.h"

namespace detr::models {

struct ModelFlops {             // one image at a padded input size
  double backbone_frozen = 0;   // stem + layer1 (frozen upstream), or the whole ResNet when the backbone does not train
  double backbone_trained = 0;  // layer2..layer4
  double transformer = 0;       // input_proj, encoder, decoder
  double heads = 0;             // class and box heads on every decoder layer's output (all with aux_loss)

  double forward() const { return backbone_frozen + backbone_trained + transformer + heads; }
  // A training step: the forward, and the backward of what follows the first trained layer at twice its
  // forward (input and weight gradients); the frozen stem and layer1 need no backward.
  double train() const { return backbone_frozen + 3 * (backbone_trained + transformer + heads); }
};

// height, width: the padded batch tensor's [H, W].
ModelFlops model_flops(const ModelConfig& config, int64_t height, int64_t width);

}  // namespace detr::models
