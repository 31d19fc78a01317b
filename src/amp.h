// Mixed precision for training (`--amp bf16|fp16`; upstream DETR has none): autocast around the
// network's forward, the matcher and losses in float32, and for fp16 a dynamic loss scaler with
// torch.cuda.amp.GradScaler's semantics (scale 2^16, ×2 after 2000 finite steps, ×0.5 and the step
// skipped on inf/NaN gradients). float32 (the default) is upstream's arithmetic, unchanged.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/detr.h"

namespace detr {

enum class Precision { fp32, bf16, fp16 };

// "off" / "fp32" / "bf16" / "fp16"; throws std::invalid_argument otherwise.
Precision parse_precision(const std::string& name);
std::string to_string(Precision p);
// Throws a one-line error where the device cannot run the precision (fp16 autocast is CUDA's).
void check_precision(Precision p, const torch::Device& device);

// Autocast on `device` for the guard's lifetime (nothing for fp32).
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  torch::DeviceType type_ = torch::kCPU;
  bool was_enabled_ = false;
  torch::ScalarType was_dtype_ = torch::kFloat;
};

// The network's outputs in float32, for the matcher and the losses.
models::DetrOutput to_float32(const models::DetrOutput& outputs);

// Dynamic loss scaling for fp16 (disabled: scale 1, nothing skipped).
class GradScaler {
 public:
  explicit GradScaler(bool enabled,
                      double init_scale = 65536.0,
                      double growth_factor = 2.0,
                      double backoff_factor = 0.5,
                      int64_t growth_interval = 2000);
  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  int64_t growth_tracker() const { return growth_tracker_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const;
  // Divides every gradient by the scale; true when any is inf or NaN (then the step must be skipped).
  bool unscale(const std::vector<torch::Tensor>& params) const;
  // After each step: back off on overflow, grow after growth_interval clean steps.
  void update(bool found_inf);
  void load(double scale, int64_t growth_tracker);

 private:
  bool enabled_;
  double scale_, growth_factor_, backoff_factor_;
  int64_t growth_interval_, growth_tracker_ = 0;
};

// What a training step needs to run in mixed precision.
struct AmpState {
  Precision precision = Precision::fp32;
  GradScaler* scaler = nullptr;  // fp16 only
};

}  // namespace detr
