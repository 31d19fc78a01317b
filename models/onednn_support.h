#pragma once
// What the kernels that call oneDNN directly (winograd_conv.cpp, fused_conv.cpp) share: the
// autocast check, and oneDNN memory backed by LibTorch tensors. Internal to models/.
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#ifdef DETR_WITH_ONEDNN
#include <dnnl.hpp>
#endif

namespace detr::models::onednn {

// Whether CPU autocast is on (these kernels then leave the convolution to LibTorch).
inline bool cpu_autocast_enabled() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(torch::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

#ifdef DETR_WITH_ONEDNN

inline const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A dnnl::memory backed by a tensor: the user's own, or a buffer this owns (a reordered copy,
// a primitive's output in its blocked layout, or its scratchpad), freed by release() as soon as it
// is no longer needed so that the transient copies of one convolution do not add up.
struct Buffer {
  dnnl::memory mem;
  torch::Tensor owned;

  static Buffer wrap(const dnnl::memory::desc& desc, const torch::Tensor& t) {
    return {dnnl::memory(desc, cpu_engine(), t.data_ptr()), {}};
  }
  static Buffer allocate(const dnnl::memory::desc& desc) {
    auto t = torch::empty({static_cast<int64_t>(desc.get_size()) + 1}, torch::kUInt8);
    return {dnnl::memory(desc, cpu_engine(), t.data_ptr()), t};
  }
  // `t` (laid out as `user`) in the layout `want`: t itself, or a reordered copy.
  static Buffer in_layout(const torch::Tensor& t,
                          const dnnl::memory::desc& user,
                          const dnnl::memory::desc& want,
                          const dnnl::stream& s) {
    auto b = wrap(user, t);
    if (user == want) return b;
    auto copy = allocate(want);
    dnnl::reorder(b.mem, copy.mem).execute(s, b.mem, copy.mem);
    return copy;
  }
  // A new tensor of `sizes` (laid out as `user`) holding this memory's values.
  torch::Tensor to_tensor(torch::IntArrayRef sizes,
                          torch::TensorOptions options,
                          const dnnl::memory::desc& user,
                          dnnl::stream& s) {
    auto t = torch::empty(sizes, options);
    auto out = wrap(user, t);
    dnnl::reorder(mem, out.mem).execute(s, mem, out.mem);
    s.wait();
    release();
    return t;
  }
  void release() {
    mem = dnnl::memory();
    owned = torch::Tensor();
  }
};

#endif  // DETR_WITH_ONEDNN

}  // namespace detr::models::onednn
