#include "models/winograd_conv.h"

#include <atomic>
#include <stdexcept>

#include "models/onednn_support.h"

namespace detr::models {

namespace {

using onednn::cpu_autocast_enabled;

#ifdef DETR_WITH_ONEDNN

using onednn::Buffer;
using onednn::cpu_engine;
using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;
constexpr auto kWino = dnnl::algorithm::convolution_winograd;

// The problem of one 3x3, stride-1, padding-1 convolution: x [B, C, H, W] -> y [B, O, H, W].
struct Problem {
  dims src, weights, bias, dst;
  const dims strides{1, 1}, padding{1, 1};
  tag layout;  // of the user tensors: nhwc (channels_last) or nchw

  Problem(const torch::Tensor& x, const torch::Tensor& w, torch::MemoryFormat format)
      : src{x.size(0), x.size(1), x.size(2), x.size(3)},
        weights{w.size(0), w.size(1), 3, 3},
        bias{w.size(0)},
        dst{x.size(0), w.size(0), x.size(2), x.size(3)},
        layout(format == torch::MemoryFormat::ChannelsLast ? tag::nhwc : tag::nchw) {}

  static dnnl::memory::desc any(const dims& d) { return {d, f32, tag::any}; }
  dnnl::memory::desc user(const dims& d) const { return {d, f32, layout}; }
};

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Problem& p) {
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, kWino, p.any(p.src), p.any(p.weights),
                                    {p.bias, f32, tag::x}, p.any(p.dst), p.strides, p.padding, p.padding);
  return {d, user_scratchpad(), cpu_engine()};
}

torch::Tensor forward_conv(const torch::Tensor& x,
                           const torch::Tensor& w,
                           const torch::Tensor& b,
                           torch::MemoryFormat format) {
  const Problem p(x, w, format);
  const auto pd = forward_pd(p);
  dnnl::stream s(cpu_engine());
  auto src = Buffer::in_layout(x, p.user(p.src), pd.src_desc(), s);
  auto weights = Buffer::in_layout(w, {p.weights, f32, tag::oihw}, pd.weights_desc(), s);
  auto dst = Buffer::allocate(pd.dst_desc());
  {
    auto scratchpad = Buffer::allocate(pd.scratchpad_desc());
    dnnl::convolution_forward(pd).execute(s, {{DNNL_ARG_SRC, src.mem},
                                              {DNNL_ARG_WEIGHTS, weights.mem},
                                              {DNNL_ARG_BIAS, Buffer::wrap(pd.bias_desc(), b).mem},
                                              {DNNL_ARG_DST, dst.mem},
                                              {DNNL_ARG_SCRATCHPAD, scratchpad.mem}});
    s.wait();
  }
  src.release();
  return dst.to_tensor({p.dst[0], p.dst[1], p.dst[2], p.dst[3]}, x.options().memory_format(format), p.user(p.dst), s);
}

struct Gradients {
  torch::Tensor x, weight, bias;  // [B, C, H, W] in x's format, [O, C, 3, 3], [O]; undefined if not asked
};

// The weight and bias gradients first (they need x's blocked copy, released after), then the input's;
// dL/dy is reordered once for both where they take the same layout.
Gradients backward_conv(const torch::Tensor& x,
                        const torch::Tensor& w,
                        const torch::Tensor& gy,
                        const Problem& p,
                        torch::MemoryFormat format,
                        bool need_x,
                        bool need_w) {
  const auto hint = forward_pd(p);
  dnnl::stream s(cpu_engine());
  Gradients g;
  Buffer diff_dst;
  auto diff_dst_in = [&](const dnnl::memory::desc& want) {
    if (!diff_dst.mem || diff_dst.mem.get_desc() != want) diff_dst = Buffer::in_layout(gy, p.user(p.dst), want, s);
    return diff_dst.mem;
  };
  if (need_w) {
    const dnnl::convolution_backward_weights::primitive_desc pd(
        {kWino, p.any(p.src), p.any(p.weights), {p.bias, f32, tag::x}, p.any(p.dst), p.strides, p.padding, p.padding},
        user_scratchpad(), cpu_engine(), hint);
    auto src = Buffer::in_layout(x, p.user(p.src), pd.src_desc(), s);
    auto diff_weights = Buffer::allocate(pd.diff_weights_desc());
    g.bias = torch::empty({p.bias[0]}, x.options());
    {
      auto scratchpad = Buffer::allocate(pd.scratchpad_desc());
      dnnl::convolution_backward_weights(pd).execute(
          s, {{DNNL_ARG_SRC, src.mem},
              {DNNL_ARG_DIFF_DST, diff_dst_in(pd.diff_dst_desc())},
              {DNNL_ARG_DIFF_WEIGHTS, diff_weights.mem},
              {DNNL_ARG_DIFF_BIAS, Buffer::wrap(pd.diff_bias_desc(), g.bias).mem},
              {DNNL_ARG_SCRATCHPAD, scratchpad.mem}});
      s.wait();
    }
    src.release();
    g.weight = diff_weights.to_tensor({p.weights[0], p.weights[1], 3, 3}, x.options(), {p.weights, f32, tag::oihw}, s);
  }
  if (need_x) {
    const dnnl::convolution_backward_data::primitive_desc pd(
        {kWino, p.any(p.src), p.any(p.weights), p.any(p.dst), p.strides, p.padding, p.padding}, user_scratchpad(),
        cpu_engine(), hint);
    auto weights = Buffer::in_layout(w, {p.weights, f32, tag::oihw}, pd.weights_desc(), s);
    auto diff_src = Buffer::allocate(pd.diff_src_desc());
    {
      auto scratchpad = Buffer::allocate(pd.scratchpad_desc());
      dnnl::convolution_backward_data(pd).execute(s, {{DNNL_ARG_DIFF_DST, diff_dst_in(pd.diff_dst_desc())},
                                                      {DNNL_ARG_WEIGHTS, weights.mem},
                                                      {DNNL_ARG_DIFF_SRC, diff_src.mem},
                                                      {DNNL_ARG_SCRATCHPAD, scratchpad.mem}});
      s.wait();
    }
    diff_dst.release();
    g.x = diff_src.to_tensor({p.src[0], p.src[1], p.src[2], p.src[3]}, gy.options().memory_format(format),
                             p.user(p.src), s);
  }
  return g;
}

torch::MemoryFormat format_of(const torch::Tensor& x) {
  return x.is_contiguous(torch::MemoryFormat::ChannelsLast) && !x.is_contiguous() ? torch::MemoryFormat::ChannelsLast
                                                                                  : torch::MemoryFormat::Contiguous;
}

struct WinogradConvFunction : torch::autograd::Function<WinogradConvFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               const torch::Tensor& x,
                               const torch::Tensor& w,
                               const torch::Tensor& b) {
    const auto format = format_of(x);
    auto xc = x.contiguous(format), wc = w.contiguous();
    ctx->save_for_backward({xc, wc});
    return forward_conv(xc, wc, b.contiguous(), format);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto format = format_of(x);
    const Problem p(x, w, format);
    auto gy = grads[0].contiguous(format);
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_w = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);
    torch::Tensor gx, gw, gb;
    try {
      auto g = backward_conv(x, w, gy, p, format, need_x, need_w);
      gx = g.x, gw = g.weight, gb = g.bias;
    } catch (const dnnl::error&) {  // not expected where the forward ran; LibTorch's kernels then
      std::tie(gx, gw, gb) = at::convolution_backward(gy, x, w, std::vector<int64_t>{w.size(0)}, {1, 1}, {1, 1}, {1, 1},
                                                      false, {0, 0}, 1, {need_x, need_w, need_w});
    }
    return {gx, gw, gb};
  }
};

#endif  // DETR_WITH_ONEDNN

bool winograd_applies(const torch::Tensor& x,
                      const torch::Tensor& w,
                      const torch::Tensor& bias,
                      torch::IntArrayRef stride,
                      torch::IntArrayRef padding,
                      torch::IntArrayRef dilation,
                      int64_t groups) {
  auto all = [](torch::IntArrayRef v, int64_t value) {
    for (auto e : v)
      if (e != value) return false;
    return true;
  };
  const bool float_cpu = [](std::initializer_list<const torch::Tensor*> ts) {
    for (const auto* t : ts)
      if (t->defined() && !(t->device().is_cpu() && t->scalar_type() == torch::kFloat)) return false;
    return true;
  }({&x, &w, &bias});
  return float_cpu && x.dim() == 4 && w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3 && w.size(1) == x.size(1) &&
         w.size(0) > 0 && x.size(0) > 0 && x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0 &&
         (!bias.defined() || (bias.dim() == 1 && bias.numel() == w.size(0))) && all(stride, 1) && all(padding, 1) &&
         all(dilation, 1) && groups == 1 && !cpu_autocast_enabled();
}

}  // namespace

std::string to_string(ConvAlgorithm algorithm) { return algorithm == ConvAlgorithm::kWinograd ? "winograd" : "direct"; }

ConvAlgorithm parse_conv_algorithm(const std::string& name) {
  if (name == "direct") return ConvAlgorithm::kDirect;
  if (name == "winograd") return ConvAlgorithm::kWinograd;
  throw std::invalid_argument("--conv_algorithm '" + name + "' is not one of direct, winograd");
}

bool winograd_available() {
#ifdef DETR_WITH_ONEDNN
  static const bool available = [] {
    try {
      auto x = torch::zeros({1, 16, 8, 8});
      auto w = torch::zeros({16, 16, 3, 3});
      const Problem p(x, w, torch::MemoryFormat::Contiguous);
      const auto hint = forward_pd(p);
      dnnl::convolution_backward_data::primitive_desc(
          {kWino, p.any(p.src), p.any(p.weights), p.any(p.dst), p.strides, p.padding, p.padding}, cpu_engine(), hint);
      dnnl::convolution_backward_weights::primitive_desc(
          {kWino, p.any(p.src), p.any(p.weights), {p.bias, f32, tag::x}, p.any(p.dst), p.strides, p.padding, p.padding},
          cpu_engine(), hint);
      return true;
    } catch (const dnnl::error&) {
      return false;  // no Winograd kernels for this CPU (oneDNN has them for AVX-512)
    }
  }();
  return available;
#else
  return false;
#endif
}

torch::Tensor winograd_conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(winograd_available(), "winograd_conv2d: this build or CPU has no oneDNN Winograd kernels");
  TORCH_CHECK(winograd_applies(x, weight, bias, {1, 1}, {1, 1}, {1, 1}, 1),
              "winograd_conv2d: needs float32 CPU x [B, C, H, W], weight [O, C, 3, 3] and bias [O], got x ", x.sizes(),
              " ", x.scalar_type(), " weight ", weight.sizes(), " ", weight.scalar_type(), " bias ",
              bias.defined() ? bias.sizes() : torch::IntArrayRef{});
#ifdef DETR_WITH_ONEDNN
  auto b = bias.defined() ? bias : torch::zeros({weight.size(0)}, weight.options());
  return WinogradConvFunction::apply(x, weight, b);
#else
  return {};
#endif
}

namespace {
// The Winograd path, or an undefined tensor where oneDNN has no kernel for this problem.
torch::Tensor try_winograd(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
#ifdef DETR_WITH_ONEDNN
  try {
    return winograd_conv2d(x, weight, bias);
  } catch (const dnnl::error&) {
  }
#endif
  return {};
}
}  // namespace

torch::Tensor conv2d(const torch::Tensor& x,
                     const torch::Tensor& weight,
                     const torch::Tensor& bias,
                     torch::IntArrayRef stride,
                     torch::IntArrayRef padding,
                     torch::IntArrayRef dilation,
                     int64_t groups,
                     ConvAlgorithm algorithm) {
  if (algorithm == ConvAlgorithm::kWinograd && winograd_applies(x, weight, bias, stride, padding, dilation, groups) &&
      winograd_available()) {
    if (auto y = try_winograd(x, weight, bias); y.defined()) return y;
  }
  return torch::conv2d(x, weight, bias, stride, padding, dilation, groups);
}

}  // namespace detr::models
