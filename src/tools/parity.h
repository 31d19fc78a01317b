// Parity check against golden data computed by upstream DETR (a fixture directory holding
// config.json, model.pth and expected.pth; format in the fixtures' README): rebuilds the model from
// the config, runs the recorded batch forward and backward, and measures every deviation.
// Segmentation fixtures ("masks": true) build DETRsegm and add its masks, mask losses and
// PostProcessSegm's masks (pixel counts exactly, and their compressed RLE strings where config.json
// lists them); their weights may come from a base fixture's model.pth (under "detr.") and head.pth.
#pragma once
#include <c10/core/ScalarType.h>

#include "models/backbone.h"

#include <string>
#include <vector>

namespace detr {

struct Deviation {
  std::string name;     // e.g. out.pred_logits, loss.loss_giou_0, grad.class_embed.weight
  double max_abs_diff;  // max |ours - ref|
  double ref_max_abs;   // max |ref|
  double tolerance;     // allowed max_abs_diff
  bool gradient = false;
  // Gradients beyond tolerance only (else -1). A deep ResNet's weight gradients are decided partly by
  // which near-zero activations each float32 implementation rounds to either side of a ReLU, so two
  // correct float32 runs can differ by more than the tolerance. Such a gradient is recomputed in
  // float64 (the exact math): exact_diff = max |ours64 - ref|, rounding = max |ours32 - ours64|
  // (what float32 rounding alone moves it). It matches when exact_diff <= tolerance + rounding.
  double exact_diff = -1;
  double rounding = -1;
  bool within_tolerance() const { return max_abs_diff <= tolerance; }
  bool ok() const { return within_tolerance() || (gradient && exact_diff >= 0 && exact_diff <= tolerance + rounding); }
};

struct ParityReport {
  std::string fixture;
  std::vector<Deviation> rows;
  std::vector<std::string> problems;  // missing or extra entries, shape mismatches
  bool ok() const;
  // Aligned table, failures marked, with a one-line verdict.
  std::string format() const;
};

// Tolerances: max|ours - ref| <= 1e-4 * max(1, max|ref|) for activations, outputs and losses;
// <= 1e-3 * max|ref| for gradients; indices and labels exactly. A gradient beyond its tolerance is
// re-measured in float64 (see Deviation::exact_diff).
// dtype: float32 as upstream; float64 measures how well-conditioned each compared value is.
// kernels: how the backbone's convolutions run (the run's --conv_algorithm).
ParityReport run_forward_parity(const std::string& fixture_dir,
                                c10::ScalarType dtype = c10::ScalarType::Float,
                                const models::ConvKernels& kernels = {});

}  // namespace detr

namespace detr {

// Replays K optimisation steps recorded by upstream's training code (a train_steps fixture:
// config.json, model.pth, batches.pth, expected.pth) through the same train_step() detr_train uses.
// Checks every step's loss and gradient norm (1e-4 relative), its lr (exactly), the listed final
// parameters (1e-4 * max(1, max|ref|)) and the sum of all trainable parameters (1e-5 relative).
ParityReport run_train_parity(const std::string& fixture_dir, const models::ConvKernels& kernels = {});

}  // namespace detr
