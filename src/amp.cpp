#include "src/amp.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <stdexcept>

#include "util/cpu.h"

namespace detr {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DETR_AUTOCAST_PER_DEVICE 1  // set_autocast_enabled(device_type, ...) replaced the per-device setters
#endif

namespace {

bool autocast_enabled(torch::DeviceType t) {
#ifdef DETR_AUTOCAST_PER_DEVICE
  return at::autocast::is_autocast_enabled(t);
#else
  return t == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

torch::ScalarType autocast_dtype(torch::DeviceType t) {
#ifdef DETR_AUTOCAST_PER_DEVICE
  return at::autocast::get_autocast_dtype(t);
#else
  return t == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast(torch::DeviceType t, bool enabled, torch::ScalarType dtype) {
#ifdef DETR_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_enabled(t, enabled);
  at::autocast::set_autocast_dtype(t, dtype);
#else
  if (t == torch::kCUDA) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

models::Prediction to_float32(const models::Prediction& p) {
  return {p.pred_logits.to(torch::kFloat), p.pred_boxes.to(torch::kFloat)};
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "off" || name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  throw std::invalid_argument("--amp must be off, bf16 or fp16, got '" + name + "'");
}

std::string to_string(Precision p) { return p == Precision::bf16 ? "bf16" : p == Precision::fp16 ? "fp16" : "off"; }

void check_precision(Precision p, const torch::Device& device) {
  if (p == Precision::fp16 && !device.is_cuda())
    throw std::runtime_error("--amp fp16 needs a CUDA device (this run is on " + device.str() +
                             "); use --amp bf16 on CPU, or --amp off");
  if (p == Precision::bf16 && device.is_cpu() && !util::cpu_has_native_bf16())
    throw std::runtime_error(
        "--amp bf16 on CPU needs bfloat16 arithmetic in hardware (on x86: AVX512_BF16 or AMX-BF16), which this CPU "
        "has not: LibTorch would emulate it, slower than float32; use --amp off");
}

AutocastGuard::AutocastGuard(const torch::Device& device, Precision precision) {
  if (precision == Precision::fp32) return;
  type_ = device.type();
  was_enabled_ = autocast_enabled(type_);
  was_dtype_ = autocast_dtype(type_);
  set_autocast(type_, true, precision == Precision::bf16 ? torch::kBFloat16 : torch::kHalf);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // Leaving the outermost region drops the cached low-precision weight copies (pytorch #46649).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(type_, was_enabled_, was_dtype_);
}

models::DetrOutput to_float32(const models::DetrOutput& outputs) {
  models::DetrOutput out;
  static_cast<models::Prediction&>(out) = to_float32(static_cast<const models::Prediction&>(outputs));
  for (const auto& a : outputs.aux_outputs) out.aux_outputs.push_back(to_float32(a));
  if (outputs.pred_masks.defined()) out.pred_masks = outputs.pred_masks.to(torch::kFloat);  // segmentation
  return out;
}

GradScaler::GradScaler(
    bool enabled, double init_scale, double growth_factor, double backoff_factor, int64_t growth_interval)
    : enabled_(enabled),
      scale_(init_scale),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

torch::Tensor GradScaler::scale_loss(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool GradScaler::unscale(const std::vector<torch::Tensor>& params) const {
  if (!enabled_) return false;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return false;
  // One flag on the device, one transfer: the step's only extra synchronisation.
  auto found = torch::zeros({}, grads[0].options().dtype(torch::kBool));
  for (auto& g : grads) {
    found.logical_or_(g.isfinite().logical_not().any());
    g.mul_(1.0 / scale_);  // scales are powers of two: exact
  }
  return found.item<bool>();
}

void GradScaler::update(bool found_inf) {
  if (!enabled_) return;
  if (found_inf) {
    scale_ *= backoff_factor_;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == growth_interval_) {
    scale_ *= growth_factor_;
    growth_tracker_ = 0;
  }
}

void GradScaler::load(double scale, int64_t growth_tracker) {
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace detr
