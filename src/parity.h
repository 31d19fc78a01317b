// Parity check against golden data computed by upstream DETR (a fixture directory holding
// config.json, model.pth and expected.pth; format in the fixtures' README): rebuilds the model from
// the config, runs the recorded batch forward and backward, and measures every deviation.
#pragma once
#include <string>
#include <vector>

namespace detr {

struct Deviation {
  std::string name;       // e.g. out.pred_logits, loss.loss_giou_0, grad.class_embed.weight
  double max_abs_diff;    // max |ours - ref|
  double ref_max_abs;     // max |ref|
  double tolerance;       // allowed max_abs_diff
  bool ok() const { return max_abs_diff <= tolerance; }
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
// <= 1e-3 * max|ref| for gradients; indices and labels exactly.
ParityReport run_forward_parity(const std::string& fixture_dir);

}  // namespace detr
