// Upstream's optimisation (main.py): AdamW over two parameter groups — group 0 every trainable
// parameter whose name lacks "backbone" (lr), group 1 those with it (lr_backbone; this includes the
// learned position embedding, as upstream) — weight decay on all, and StepLR stepped once per epoch.
// The update is written out as PyTorch 1.13's single-tensor AdamW, operation for operation, or (the
// default) as its multi-tensor ("foreach") AdamW: the same operations, each applied to a whole group
// at once, which on CUDA is one kernel launch per operation instead of one per parameter (DETR has
// ~300 parameter tensors). On CPU the two give bit-identical parameters (tested).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace detr {

struct ParamGroup {
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
  double lr = 1e-4;
  double initial_lr = 1e-4;  // StepLR's base
  double weight_decay = 1e-4;
};

struct AdamWOptions {
  double lr = 1e-4;
  double lr_backbone = 1e-5;
  double weight_decay = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool foreach = true;  // multi-tensor update (torch.optim.AdamW(foreach=True)); false: per tensor
};

class AdamW {
 public:
  // Builds upstream's two groups from the model's trainable parameters.
  AdamW(const torch::nn::Module& model, AdamWOptions options);

  void zero_grad();      // zeroes defined gradients in place (upstream 1.13's zero_grad())
  void release_grads();  // drops them (set_to_none): the values AdamW sees are the same, as backward
                         // writes a fresh gradient; the memory is free during the next forward
  void step();

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  const AdamWOptions& options() const { return options_; }
  // A resumed optimizer's betas and eps (torch.optim's load_state_dict restores them).
  void set_moment_options(double beta1, double beta2, double eps) {
    options_.beta1 = beta1, options_.beta2 = beta2, options_.eps = eps;
  }

  // Per-parameter state in group order (upstream's integer ids 0..N-1): step count and moments.
  struct State {
    int64_t step = 0;
    torch::Tensor exp_avg, exp_avg_sq;
  };
  std::vector<State>& state() { return state_; }
  const std::vector<State>& state() const { return state_; }
  std::vector<torch::Tensor> all_params() const;

 private:
  void step_single();
  void step_foreach();
  AdamWOptions options_;
  std::vector<ParamGroup> groups_;
  std::vector<State> state_;  // indexed like all_params()
};

// torch.optim.lr_scheduler.StepLR(step_size, gamma=0.1), chainable form: each step() that lands on a
// multiple of step_size multiplies every group's lr by gamma.
class StepLR {
 public:
  StepLR(AdamW& optimizer, int64_t step_size, double gamma = 0.1);
  void step();
  int64_t last_epoch() const { return last_epoch_; }
  void set_last_epoch(int64_t e) { last_epoch_ = e; }
  int64_t step_size() const { return step_size_; }
  void set_step_size(int64_t s) { step_size_ = s; }
  void set_gamma(double g) { gamma_ = g; }
  double gamma() const { return gamma_; }

 private:
  AdamW& optimizer_;
  int64_t step_size_;
  double gamma_;
  int64_t last_epoch_ = 0;
};

// torch.nn.utils.clip_grad_norm_ (PyTorch 1.13): the L2 norm over the gradients of all parameters
// that have one; every gradient is scaled by min(1, max_norm / (norm + 1e-6)) when max_norm > 0.
// Returns the total norm before clipping.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace detr
