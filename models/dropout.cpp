#include "models/dropout.h"

namespace detr::models {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LeanDropout : public torch::autograd::Function<LeanDropout> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& x, double p) {
    Tensor keep;
    auto out = dropout_keeping_mask(x, p, &keep);
    ctx->saved_data["keep"] = keep;
    ctx->saved_data["p"] = p;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {dropout_backward(grads[0], ctx->saved_data["keep"].toTensor(), ctx->saved_data["p"].toDouble()), Tensor()};
  }
};

class LeanReluDropout : public torch::autograd::Function<LeanReluDropout> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& x, double p) {
    Tensor keep;
    auto out = dropout_keeping_mask(torch::relu(x), p, &keep);
    ctx->save_for_backward({out});
    ctx->saved_data["keep"] = keep;
    ctx->saved_data["p"] = p;
    return out;
  }
  // relu's backward is threshold_backward(grad, relu(x), 0); out = relu(x) × noise is > 0 exactly
  // where relu(x) is and the element was kept, and a dropped element's gradient is zero anyway.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto out = ctx->get_saved_variables()[0];
    auto grad = dropout_backward(grads[0], ctx->saved_data["keep"].toTensor(), ctx->saved_data["p"].toDouble());
    return {at::threshold_backward(grad, out, 0), Tensor()};
  }
};

}  // namespace

// ATen's CPU dropout is empty_like → bernoulli_(1 - p) → div_(1 - p) → multiply; accelerators use
// the fused native_dropout. Both are repeated here, drawing the same random numbers.
Tensor dropout_keeping_mask(const Tensor& x, double p, Tensor* keep) {
  if (x.device().is_cpu()) {
    auto noise = at::empty_like(x, at::MemoryFormat::Contiguous);
    noise.bernoulli_(1 - p);
    noise.div_(1 - p);
    *keep = noise.ne(0);
    return x * noise;
  }
  auto [out, mask] = at::native_dropout(x, p, true);
  *keep = mask;
  return out;
}

Tensor dropout_noise(const Tensor& keep, double p, torch::ScalarType dtype) {
  return keep.to(dtype).div_(1 - p);  // 0 or 1 / (1 - p), computed as the forward's div_ did
}

Tensor dropout_backward(const Tensor& grad, const Tensor& keep, double p) {
  if (grad.device().is_cpu()) return grad * dropout_noise(keep, p, grad.scalar_type());
  return at::native_dropout_backward(grad, keep, 1 / (1 - p));
}

Tensor dropout(const Tensor& x, double p, bool training) {
  if (!training || p <= 0 || p >= 1 || x.numel() == 0 || !torch::GradMode::is_enabled() || !x.requires_grad())
    return torch::dropout(x, p, training);
  return LeanDropout::apply(x, p);
}

Tensor relu_dropout(const Tensor& x, double p, bool training) {
  if (!training || p <= 0 || p >= 1 || x.numel() == 0 || !torch::GradMode::is_enabled() || !x.requires_grad())
    return torch::dropout(torch::relu(x), p, training);
  return LeanReluDropout::apply(x, p);
}

}  // namespace detr::models
