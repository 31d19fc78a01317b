// Dropout as ATen computes it (same random numbers, same values) that keeps a one-byte mask for
// backward instead of the float noise autograd would keep: a quarter of the memory at every dropout
// of DETR's transformer. Gradients are bit-identical to the library's on CPU.
#pragma once
#include <torch/torch.h>

namespace detr::models {

// F.dropout(x, p, training): the library's own when no gradient is recorded.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// dropout(relu(x)), the transformer's feed-forward middle, keeping only the output (which the next
// linear keeps anyway) and the one-byte mask: relu's output is not kept a second time. Gradients
// equal the library's (up to the sign of zeros where dropout removed an element).
torch::Tensor relu_dropout(const torch::Tensor& x, double p, bool training);

// The pieces, for attention's recomputing core: x with dropout applied, `keep` set to the mask...
torch::Tensor dropout_keeping_mask(const torch::Tensor& x, double p, torch::Tensor* keep);
// ...and the gradient through it: grad × noise (CPU), or native_dropout_backward.
torch::Tensor dropout_backward(const torch::Tensor& grad, const torch::Tensor& keep, double p);
// Bernoulli draws as ATen's CPU bernoulli_(keep_p) makes them from the default generator (the same
// numbers, the generator left in the same state), as a bool tensor, without its per-element calls.
// `generator`: the default CPU generator when none.
torch::Tensor keep_draws(torch::IntArrayRef sizes,
                         double keep_p,
                         c10::optional<at::Generator> generator = c10::nullopt);
// Whether keep_draws() makes this LibTorch's bernoulli_ numbers (not where bernoulli_ draws from MKL's
// streams; dropout then uses bernoulli_ itself).
bool keep_draws_reproduce_bernoulli();
// x × dropout_noise(keep, p), bit for bit, in one pass on float32 CPU tensors (x and keep of one shape).
torch::Tensor scale_kept(const torch::Tensor& x, const torch::Tensor& keep, double p);
// The forward's multiplier rebuilt from the mask, bit for bit (CPU).
torch::Tensor dropout_noise(const torch::Tensor& keep, double p, torch::ScalarType dtype);

}  // namespace detr::models
