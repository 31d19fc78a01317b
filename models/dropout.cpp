#include "models/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/record_function.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <mutex>

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

namespace {

constexpr int kStateWords = 624, kShift = 397;  // mt19937's N and M

// at::mt19937's next_state(): the next 624 words from the current ones, in place.
void twist(uint32_t* s) {
  auto mix = [](uint32_t u, uint32_t v) {
    return (((u & 0x80000000u) | (v & 0x7fffffffu)) >> 1) ^ ((v & 1u) ? 0x9908b0dfu : 0u);
  };
  int i = 0;
  for (; i < kStateWords - kShift; ++i) s[i] = s[i + kShift] ^ mix(s[i], s[i + 1]);
  for (; i < kStateWords - 1; ++i) s[i] = s[i + kShift - kStateWords] ^ mix(s[i], s[i + 1]);
  s[kStateWords - 1] = s[kShift - 1] ^ mix(s[kStateWords - 1], s[0]);
}

// The engine's next `count` untempered words into `out`, advancing `d` as count calls of operator()
// would: `left_ - 1` words remain at state_[next_] before the next twist.
void next_words(at::mt19937_data_pod& d, uint32_t* out, int64_t count) {
  while (count > 0) {
    if (d.left_ <= 1) {
      twist(d.state_.data());
      d.left_ = kStateWords + 1;  // the call that twists reads word 0 and leaves left_ at 624
      d.next_ = 0;
    }
    const int64_t take = std::min<int64_t>(count, d.left_ - 1);
    std::copy_n(d.state_.data() + d.next_, take, out);
    out += take;
    count -= take;
    d.next_ += static_cast<uint32_t>(take);
    d.left_ -= static_cast<int>(take);
  }
}

inline uint32_t temper(uint32_t y) {
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  return y ^ (y >> 18);
}

}  // namespace

// ATen's serial CPU bernoulli_(keep_p) kernel draws, per element in order, random64() from the default
// generator's mt19937 (two 32-bit outputs, the first the high half), takes its low 53 bits as
// m / 2^53 in [0, 1) and keeps the element when that is < keep_p. The same comparison in integers:
// m < ceil(keep_p * 2^53). Here the stream's words are made a block at a time (the twist is the only
// sequential part) and tempered and compared in parallel.
Tensor keep_draws(torch::IntArrayRef sizes, double keep_p, c10::optional<at::Generator> generator) {
  TORCH_CHECK(keep_p >= 0 && keep_p <= 1, "keep_draws: probability ", keep_p, " is not in [0, 1]");
  RECORD_FUNCTION("detr::keep_draws", std::vector<c10::IValue>());
  auto keep = torch::empty(sizes, torch::kBool);
  const auto threshold = static_cast<uint64_t>(std::ceil(std::ldexp(keep_p, 53)));
  auto* out = keep.data_ptr<bool>();
  const int64_t n = keep.numel();
  constexpr int64_t kChunk = 1 << 16;  // draws per block of words
  std::vector<uint32_t> words(2 * static_cast<size_t>(std::min(n, kChunk)));
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  auto engine = gen->engine();
  auto d = engine.data();
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const int64_t m = std::min(kChunk, n - begin);
    next_words(d, words.data(), 2 * m);
    const uint32_t* w = words.data();
    bool* o = out + begin;
    at::parallel_for(0, m, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint64_t hi = temper(w[2 * i]) & 0x1FFFFFu, lo = temper(w[2 * i + 1]);
        o[i] = ((hi << 32) | lo) < threshold;
      }
    });
  }
  engine.set_data(d);
  gen->set_engine(engine);
  return keep;
}

// Checked once, on 10,007 draws from two copies of the default generator (which stays untouched).
bool keep_draws_reproduce_bernoulli() {
  static const bool match = [] {
    auto gen = at::detail::getDefaultCPUGenerator();
    at::Generator a, b;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      a = gen.clone();
      b = gen.clone();
    }
    auto library = torch::empty({10007}).bernoulli_(0.9, a).ne(0);
    return torch::equal(library, keep_draws({10007}, 0.9, b));
  }();
  return match;
}

// ATen's CPU dropout is empty_like → bernoulli_(1 - p) → div_(1 - p) → multiply; accelerators use
// the fused native_dropout. Both are repeated here, drawing the same random numbers.
Tensor dropout_keeping_mask(const Tensor& x, double p, Tensor* keep) {
  if (x.device().is_cpu() && keep_draws_reproduce_bernoulli()) {
    *keep = keep_draws(x.sizes(), 1 - p);
    return scale_kept(x, *keep, p);
  }
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

// x × noise, where noise is 0 or the kept value v = 1 / (1 - p) that div_ makes: per element
// x · v or x · 0, the products the multiplication computes, in one pass without the float noise.
// float32 CPU tensors of keep's shape; others take dropout_noise.
Tensor scale_kept(const Tensor& x, const Tensor& keep, double p) {
  if (!(x.device().is_cpu() && x.scalar_type() == torch::kFloat && keep.scalar_type() == torch::kBool &&
        x.sizes() == keep.sizes()))
    return x * dropout_noise(keep, p, x.scalar_type());
  const float v = dropout_noise(torch::ones({1}, torch::kBool), p, torch::kFloat).item<float>();
  const auto xc = x.contiguous(), kc = keep.contiguous();
  auto out = torch::empty_like(xc, at::MemoryFormat::Contiguous);
  const float* xs = xc.data_ptr<float>();
  const bool* ks = kc.data_ptr<bool>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, xc.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = xs[i] * (ks[i] ? v : 0.0f);
  });
  return out;
}

Tensor dropout_noise(const Tensor& keep, double p, torch::ScalarType dtype) {
  return keep.to(dtype).div_(1 - p);  // 0 or 1 / (1 - p), computed as the forward's div_ did
}

Tensor dropout_backward(const Tensor& grad, const Tensor& keep, double p) {
  if (grad.device().is_cpu()) return scale_kept(grad, keep, p);
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
