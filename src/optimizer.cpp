#include "src/optimizer.h"

#include <cmath>

namespace detr {

AdamW::AdamW(const torch::nn::Module& model, AdamWOptions options) : options_(options) {
  ParamGroup g0, g1;
  g0.lr = g0.initial_lr = options.lr;
  g1.lr = g1.initial_lr = options.lr_backbone;
  g0.weight_decay = g1.weight_decay = options.weight_decay;
  for (const auto& p : model.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    auto& g = p.key().find("backbone") == std::string::npos ? g0 : g1;
    g.names.push_back(p.key());
    g.params.push_back(p.value());
  }
  groups_ = {g0, g1};
  state_.resize(g0.params.size() + g1.params.size());
}

std::vector<torch::Tensor> AdamW::all_params() const {
  std::vector<torch::Tensor> all;
  for (const auto& g : groups_) all.insert(all.end(), g.params.begin(), g.params.end());
  return all;
}

void AdamW::release_grads() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.mutable_grad() = torch::Tensor();
}

void AdamW::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) {
        p.mutable_grad().detach_();
        p.mutable_grad().zero_();
      }
}

void AdamW::step() {
  if (options_.foreach) {
    step_foreach();
  } else {
    step_single();
  }
}

// torch.optim.adamw._multi_tensor_adamw (PyTorch 1.13, capturable=False, amsgrad=False).
void AdamW::step_foreach() {
  torch::NoGradGuard no_grad;
  const double b1 = options_.beta1, b2 = options_.beta2;
  size_t k = 0;
  for (auto& g : groups_) {
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
    std::vector<c10::Scalar> step_sizes, bias_correction2_sqrts;
    for (auto& p : g.params) {
      auto& st = state_[k++];
      if (!p.grad().defined()) continue;
      if (!st.exp_avg.defined()) {
        st.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        st.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      }
      st.step += 1;
      const double step = static_cast<double>(st.step);
      step_sizes.emplace_back(-(g.lr / (1 - std::pow(b1, step))));
      bias_correction2_sqrts.emplace_back(std::sqrt(1 - std::pow(b2, step)));
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(st.exp_avg);
      exp_avg_sqs.push_back(st.exp_avg_sq);
    }
    if (params.empty()) continue;
    at::_foreach_mul_(params, 1 - g.lr * g.weight_decay);
    at::_foreach_mul_(exp_avgs, b1);
    at::_foreach_add_(exp_avgs, grads, 1 - b1);
    at::_foreach_mul_(exp_avg_sqs, b2);
    at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - b2);
    auto denom = at::_foreach_sqrt(exp_avg_sqs);
    at::_foreach_div_(denom, bias_correction2_sqrts);
    at::_foreach_add_(denom, options_.eps);
    at::_foreach_addcdiv_(params, exp_avgs, denom, step_sizes);
  }
}

void AdamW::step_single() {
  torch::NoGradGuard no_grad;
  const double b1 = options_.beta1, b2 = options_.beta2;
  size_t k = 0;
  for (auto& g : groups_) {
    for (auto& p : g.params) {
      auto& st = state_[k++];
      if (!p.grad().defined()) continue;
      const auto& grad = p.grad();
      if (!st.exp_avg.defined()) {
        st.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        st.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      }
      st.step += 1;
      p.mul_(1 - g.lr * g.weight_decay);
      st.exp_avg.mul_(b1).add_(grad, 1 - b1);
      st.exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
      const double step = static_cast<double>(st.step);
      const double bias_correction1 = 1 - std::pow(b1, step);
      const double bias_correction2 = 1 - std::pow(b2, step);
      const double step_size = g.lr / bias_correction1;
      const double bias_correction2_sqrt = std::sqrt(bias_correction2);
      auto denom = (st.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
      p.addcdiv_(st.exp_avg, denom, -step_size);
    }
  }
}

StepLR::StepLR(AdamW& optimizer, int64_t step_size, double gamma)
    : optimizer_(optimizer), step_size_(step_size), gamma_(gamma) {
  TORCH_CHECK(step_size > 0, "--lr_drop must be positive, got ", step_size);
}

void StepLR::step() {
  ++last_epoch_;
  if (last_epoch_ % step_size_ != 0) return;
  for (auto& g : optimizer_.groups()) g.lr *= gamma_;
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  for (const auto& g : grads) norms.push_back(torch::norm(g.detach(), 2));
  auto total_norm = torch::norm(torch::stack(norms), 2);
  if (max_norm > 0) {
    auto clip_coef = torch::clamp(max_norm / (total_norm + 1e-6), c10::nullopt, 1.0);
    for (auto& g : grads) g.detach().mul_(clip_coef.to(g.device()));
  }
  return total_norm.item<double>();
}

}  // namespace detr
