#include "models/fused_conv.h"

#include <optional>
#include <unordered_map>

#include "models/onednn_support.h"

namespace detr::models {

#ifdef DETR_WITH_ONEDNN

namespace {

using onednn::Buffer;
using onednn::cpu_engine;
using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;

// What one primitive is made for: the input's shape, the kernel's, the geometry and the post-ops.
struct Problem {
  dims src, weights, bias, dst, strides, dilates, padding;  // dilates: oneDNN's (dilation - 1)
  bool residual = false, relu = false, winograd = false;

  bool operator==(const Problem& o) const {
    return src == o.src && weights == o.weights && strides == o.strides && dilates == o.dilates &&
           padding == o.padding && residual == o.residual && relu == o.relu && winograd == o.winograd;
  }
};

Problem problem_of(const torch::Tensor& x,
                   const torch::Tensor& w,
                   bool residual,
                   bool relu,
                   const ConvGeometry& g,
                   ConvAlgorithm algorithm) {
  Problem p;
  p.src = {x.size(0), x.size(1), x.size(2), x.size(3)};
  p.weights = {w.size(0), w.size(1), w.size(2), w.size(3)};
  p.bias = {w.size(0)};
  p.strides = {g.stride[0], g.stride[1]};
  p.dilates = {g.dilation[0] - 1, g.dilation[1] - 1};
  p.padding = {g.padding[0], g.padding[1]};
  dims out(2);
  for (int i = 0; i < 2; ++i)
    out[i] = (p.src[2 + i] + 2 * p.padding[i] - g.dilation[i] * (p.weights[2 + i] - 1) - 1) / p.strides[i] + 1;
  p.dst = {x.size(0), w.size(0), out[0], out[1]};
  p.residual = residual;
  p.relu = relu;
  p.winograd = algorithm == ConvAlgorithm::kWinograd && w.size(2) == 3 && w.size(3) == 3 && p.strides == dims{1, 1} &&
               p.dilates == dims{0, 0} && p.padding == dims{1, 1};
  return p;
}

dnnl::memory::desc nhwc(const dims& d) { return {d, f32, tag::nhwc}; }

dnnl::convolution_forward::primitive_desc make_pd(const Problem& p) {
  dnnl::post_ops ops;
  if (p.residual) ops.append_binary(dnnl::algorithm::binary_add, nhwc(p.dst));
  if (p.relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Winograd's kernels take their own blocked layout (reordered around them, as winograd_conv does);
  // the direct ones run on channels_last itself.
  const auto act = [&](const dims& d) { return p.winograd ? dnnl::memory::desc(d, f32, tag::any) : nhwc(d); };
  const dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_inference,
      p.winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct, act(p.src),
      {p.weights, f32, tag::any}, {p.bias, f32, tag::x}, act(p.dst), p.strides, p.dilates, p.padding, p.padding);
  return {d, attr, cpu_engine()};
}

// What a source tensor held when the kept copy was made: its storage (held, so that its address is
// never another storage's while the copy is kept), where in it, its type and its version (bumped by
// every in-place update, copy_ and load_state_dict included). set_data (Module::to) swaps the storage.
struct SourceKey {
  c10::Storage storage;
  int64_t offset = 0, version = 0;
  torch::Dtype dtype = torch::kFloat;

  bool operator==(const SourceKey& o) const {
    return storage.unsafeGetStorageImpl() == o.storage.unsafeGetStorageImpl() && offset == o.offset &&
           version == o.version && dtype == o.dtype;
  }
};

std::vector<SourceKey> key_of(const std::vector<torch::Tensor>& sources) {
  std::vector<SourceKey> key;
  for (const auto& t : sources) key.push_back({t.storage(), t.storage_offset(), t._version(), t.scalar_type()});
  return key;
}

bool applies(const torch::Tensor& x, const torch::Tensor& residual, const std::vector<torch::Tensor>& sources) {
  const auto ok = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.dim() == 4 && !t.requires_grad() &&
           t.is_contiguous(torch::MemoryFormat::ChannelsLast);
  };
  if (torch::GradMode::is_enabled() || onednn::cpu_autocast_enabled() || !ok(x) ||
      (residual.defined() && !ok(residual)))
    return false;
  for (const auto& t : sources)  // float32 CPU; not inference tensors (no version counter to tell a stale copy)
    if (t.is_inference() || !t.device().is_cpu() || t.scalar_type() != torch::kFloat || !t.has_storage()) return false;
  return !sources.empty() && sources[0].dim() == 4 && sources[0].size(1) == x.size(1);
}

}  // namespace

struct FusedConv::State {
  std::optional<Problem> problem, unsupported;  // the last problem made, and the last one oneDNN refused
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
  std::vector<SourceKey> weights_key;
  dnnl::memory::desc weights_desc;
  Buffer weights;      // folded, in the primitive's layout
  torch::Tensor bias;  // [O] folded
  int64_t fused_forwards = 0;
};

FusedConv::FusedConv() : state_(std::make_unique<State>()) {}
FusedConv::~FusedConv() = default;
bool FusedConv::available() { return true; }

void FusedConv::release_weights() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_->weights_key.empty()) return;
  state_->weights.release();
  state_->bias = torch::Tensor();
  state_->weights_key.clear();
}

bool FusedConv::holds_weights() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !state_->weights_key.empty();
}

int64_t FusedConv::fused_forwards() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_->fused_forwards;
}

torch::Tensor FusedConv::forward(const torch::Tensor& x,
                                 const torch::Tensor& residual,
                                 bool relu,
                                 const std::vector<torch::Tensor>& sources,
                                 const FoldedWeights& fold,
                                 const ConvGeometry& geometry,
                                 ConvAlgorithm algorithm) {
  if (!applies(x, residual, sources)) return {};
  std::lock_guard<std::mutex> lock(mutex_);
  auto& st = *state_;
  try {
    const auto p = problem_of(x, sources[0], residual.defined(), relu, geometry, algorithm);
    if ((residual.defined() && residual.sizes() != torch::IntArrayRef(p.dst)) ||
        (st.unsupported && *st.unsupported == p))
      return {};
    if (!st.problem || !(*st.problem == p)) {
      st.problem.reset();
      st.unsupported = p;  // until made
      st.pd = make_pd(p);
      st.primitive = dnnl::convolution_forward(st.pd);
      st.problem = p;
      st.unsupported.reset();
    }
    dnnl::stream s(cpu_engine());
    const auto key = key_of(sources);
    if (key != st.weights_key || st.pd.weights_desc() != st.weights_desc) {
      const auto [folded_w, folded_b] = fold();  // [O, C, kh, kw], [O]
      const auto w = folded_w.contiguous();
      TORCH_CHECK(w.scalar_type() == torch::kFloat && w.sizes() == torch::IntArrayRef(p.weights) &&
                      folded_b.scalar_type() == torch::kFloat && folded_b.numel() == p.weights[0],
                  "FusedConv: folded weights must be float32 ", p.weights, " and ", p.weights[0], ", got ",
                  w.scalar_type(), " ", w.sizes(), " and ", folded_b.scalar_type(), " ", folded_b.sizes());
      auto plain = Buffer::wrap({p.weights, f32, tag::oihw}, w);
      st.weights = Buffer::allocate(st.pd.weights_desc());  // a copy even where the layout is the same
      dnnl::reorder(plain.mem, st.weights.mem).execute(s, plain.mem, st.weights.mem);
      s.wait();
      st.bias = folded_b.contiguous();
      st.weights_key = key;
      st.weights_desc = st.pd.weights_desc();
    }
    auto src = Buffer::in_layout(x, nhwc(p.src), st.pd.src_desc(), s);
    const bool plain_dst = st.pd.dst_desc() == nhwc(p.dst);
    auto y = torch::empty({p.dst[0], p.dst[1], p.dst[2], p.dst[3]},
                          x.options().memory_format(torch::MemoryFormat::ChannelsLast));
    auto dst = plain_dst ? Buffer::wrap(nhwc(p.dst), y) : Buffer::allocate(st.pd.dst_desc());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src.mem},
                                               {DNNL_ARG_WEIGHTS, st.weights.mem},
                                               {DNNL_ARG_BIAS, Buffer::wrap(st.pd.bias_desc(), st.bias).mem},
                                               {DNNL_ARG_DST, dst.mem}};
    if (residual.defined())
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = Buffer::wrap(nhwc(p.dst), residual).mem;
    auto scratchpad = Buffer::allocate(st.pd.scratchpad_desc());
    args[DNNL_ARG_SCRATCHPAD] = scratchpad.mem;
    st.primitive.execute(s, args);
    s.wait();
    if (!plain_dst) {
      auto out = Buffer::wrap(nhwc(p.dst), y);
      dnnl::reorder(dst.mem, out.mem).execute(s, dst.mem, out.mem);
      s.wait();
    }
    ++st.fused_forwards;
    return y;
  } catch (const dnnl::error&) {  // no kernel for this problem here: the caller's unfused path
    st.weights_key.clear();
    return {};
  }
}

#else  // no oneDNN: the caller's unfused path, always

struct FusedConv::State {};
FusedConv::FusedConv() : state_(std::make_unique<State>()) {}
FusedConv::~FusedConv() = default;
int64_t FusedConv::fused_forwards() const { return 0; }
void FusedConv::release_weights() {}
bool FusedConv::holds_weights() const { return false; }
bool FusedConv::available() { return false; }
torch::Tensor FusedConv::forward(const torch::Tensor&,
                                 const torch::Tensor&,
                                 bool,
                                 const std::vector<torch::Tensor>&,
                                 const FoldedWeights&,
                                 const ConvGeometry&,
                                 ConvAlgorithm) {
  return {};
}

#endif  // DETR_WITH_ONEDNN

}  // namespace detr::models
