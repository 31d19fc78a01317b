#include "src/distributed.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>

// c10d compiles its backends only under these macros; CMake says which this LibTorch has.
#if defined(DETR_WITH_GLOO) && !defined(USE_C10D_GLOO)
#define USE_C10D_GLOO
#endif
#if defined(DETR_WITH_NCCL) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL
#endif
#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef DETR_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef DETR_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace detr::dist {

namespace {

std::optional<std::string> get_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, int fallback, int min_value) {
  const auto v = get_env(name);
  if (!v) return fallback;
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v->size() || value < min_value || value > 1 << 30)
    throw std::runtime_error(std::string("environment variable ") + name + "='" + *v +
                             "' is not an integer >= " + std::to_string(min_value));
  return static_cast<int>(value);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string error_text(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

std::string seconds(std::chrono::milliseconds t) {
  std::ostringstream o;
  o << static_cast<double>(t.count()) / 1000.0 << " s";
  return o.str();
}

// Flattens tensors (one dtype and device) into one buffer and back.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  return torch::cat(flat);
}

void unflatten_into(const torch::Tensor& flat, std::vector<torch::Tensor>& tensors) {
  int64_t offset = 0;
  for (auto& t : tensors) {
    t.copy_(flat.narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}

}  // namespace

std::optional<Env> env_from_environment(const std::string& dist_url) {
  Env env;
  if (get_env("RANK") && get_env("WORLD_SIZE")) {
    env.rank = env_int("RANK", 0, 0);
    env.world_size = env_int("WORLD_SIZE", 1, 1);
    env.local_rank = env_int("LOCAL_RANK", 0, 0);
    env.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, 1);
    env.source = "RANK/WORLD_SIZE";
    if (get_env("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True")) {
      env.agent_store_attempt = get_env("TORCHELASTIC_RESTART_COUNT").value_or("0");
      env.source = "torchrun";
    }
  } else if (get_env("SLURM_PROCID") && get_env("SLURM_NTASKS")) {
    env.rank = env_int("SLURM_PROCID", 0, 0);
    env.world_size = env_int("SLURM_NTASKS", 1, 1);
    env.local_rank = env_int("SLURM_LOCALID", 0, 0);
    env.local_world_size = env_int("SLURM_NTASKS_PER_NODE", 1, 1);
    env.source = "SLURM";
  } else {
    return std::nullopt;
  }
  if (env.rank >= env.world_size)
    throw std::runtime_error("rank " + std::to_string(env.rank) + " is not below the world size " +
                             std::to_string(env.world_size) + " (" + env.source + ")");
  if (auto addr = get_env("MASTER_ADDR")) env.master_addr = *addr;
  env.gloo_socket_ifname = get_env("GLOO_SOCKET_IFNAME");
  env.master_port = env_int("MASTER_PORT", env.master_port, 1);
  if (dist_url.rfind("tcp://", 0) == 0) {
    const auto hostport = dist_url.substr(6);
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw std::runtime_error("--dist_url '" + dist_url + "': expected tcp://HOST:PORT");
    env.master_addr = hostport.substr(0, colon);
    try {
      env.master_port = std::stoi(hostport.substr(colon + 1));
    } catch (const std::exception&) {
      throw std::runtime_error("--dist_url '" + dist_url + "': the port is not a number");
    }
  } else if (dist_url != "env://") {
    throw std::runtime_error("--dist_url '" + dist_url + "': only env:// and tcp://HOST:PORT are supported");
  }
  if (env.master_port < 1 || env.master_port > 65535)
    throw std::runtime_error("MASTER_PORT " + std::to_string(env.master_port) + " is not a TCP port");
  return env;
}

bool gloo_available() {
#ifdef DETR_WITH_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef DETR_WITH_NCCL
  return true;
#else
  return false;
#endif
}

// ---- the backend behind ProcessGroup ------------------------------------------------------------

#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)

struct ProcessGroup::Impl {
  virtual ~Impl() = default;
  virtual void allreduce(std::vector<torch::Tensor>& t) = 0;
  virtual void broadcast(std::vector<torch::Tensor>& t) = 0;
  virtual void allgather(std::vector<std::vector<torch::Tensor>>& out, std::vector<torch::Tensor>& in) = 0;
  virtual void barrier() = 0;
  c10::intrusive_ptr<c10d::Store> store;
  torch::Device device = torch::kCPU;  // collectives' tensors (NCCL: the rank's GPU)
};

namespace {

// LibTorch 1.13's backends derive from ProcessGroup, 2.x's from Backend: call them by their own type.
template <class PG>
struct BackendImpl : ProcessGroup::Impl {
  c10::intrusive_ptr<PG> pg;
  std::chrono::milliseconds timeout{};
  std::vector<int64_t> barrier_devices;  // NCCL: this rank's GPU (else c10d guesses one from the rank)
  void allreduce(std::vector<torch::Tensor>& t) override {
    c10d::AllreduceOptions o;
    o.timeout = timeout;
    pg->allreduce(t, o)->wait();
  }
  void broadcast(std::vector<torch::Tensor>& t) override {
    c10d::BroadcastOptions o;
    o.timeout = timeout;
    pg->broadcast(t, o)->wait();
  }
  void allgather(std::vector<std::vector<torch::Tensor>>& out, std::vector<torch::Tensor>& in) override {
    c10d::AllgatherOptions o;
    o.timeout = timeout;
    pg->allgather(out, in, o)->wait();
  }
  void barrier() override {
    c10d::BarrierOptions o;
    o.timeout = timeout;
    o.device_ids = barrier_devices;
    pg->barrier(o)->wait();
  }
};

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

#else

struct ProcessGroup::Impl {};

#endif

#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)
namespace {
// LibTorch 2.4+ defaults TCPStore to its libuv server, which builds without libuv (Debian's LibTorch
// 2.x) refuse ("use_libuv was requested but PyTorch was build without libuv support"): use the
// classic server, which every LibTorch has. LibTorch 1.13 has no such option.
template <typename Options>
auto use_classic_store_server(Options& o, int) -> decltype(o.useLibUV = false, void()) {
  o.useLibUV = false;
}
template <typename Options>
void use_classic_store_server(Options&, long) {}
}  // namespace
#endif

ProcessGroup::ProcessGroup(
    std::unique_ptr<Impl> impl, int rank, int world_size, std::string backend, std::chrono::milliseconds timeout)
    : impl_(std::move(impl)), rank_(rank), world_size_(world_size), backend_(std::move(backend)), timeout_(timeout) {}

ProcessGroup::~ProcessGroup() = default;

namespace {

// The backend a job runs: the option, else nccl on CUDA (when built with it), gloo otherwise.
std::string resolve_backend(const Env& env, const InitOptions& options) {
  std::string backend = options.backend;
  if (backend.empty()) backend = options.device.is_cuda() && nccl_available() ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl")
    throw std::runtime_error("--dist_backend '" + backend + "': expected gloo or nccl");
  if (backend == "nccl" && !options.device.is_cuda())
    throw std::runtime_error("--dist_backend nccl needs CUDA devices (this run is on " + options.device.str() +
                             "); use --dist_backend gloo");
  if ((backend == "gloo" && !gloo_available()) || (backend == "nccl" && !nccl_available()))
    throw std::runtime_error("this build of detr-cpp has no c10d " + backend +
                             " backend (its LibTorch lacked the headers at configure time); WORLD_SIZE=" +
                             std::to_string(env.world_size) + " cannot run");
  return backend;
}

#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)
// The TCPStore rendezvous: rank 0 hosts it, or torchrun's agent does.
c10::intrusive_ptr<c10d::Store> rendezvous(const Env& env,
                                           const InitOptions& options,
                                           const std::string& where,
                                           const std::string& who) {
  try {
    c10d::TCPStoreOptions so;
    use_classic_store_server(so, 0);
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.timeout = options.timeout;
    if (env.agent_store_attempt) {
      // torchrun's agent already hosts the store at MASTER_ADDR:MASTER_PORT: every rank is a client,
      // under the prefix its workers use (as torch.distributed's env:// rendezvous does).
      so.isServer = false;
      so.waitWorkers = false;
      return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + *env.agent_store_attempt,
                                                    c10::make_intrusive<c10d::TCPStore>(env.master_addr, so));
    }
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<size_t>(env.world_size);
    so.waitWorkers = true;
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed rendezvous at " + where + " failed for " + who + " within " +
                             seconds(options.timeout) + " (did all " + std::to_string(env.world_size) +
                             " processes start? With the same MASTER_ADDR/MASTER_PORT? Is the port free on rank 0 "
                             "and reachable?): " +
                             error_text(e));
  }
}
#endif

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::init(const Env& env, const InitOptions& options) {
  const std::string backend = resolve_backend(env, options);
#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string who = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size);
  auto store = rendezvous(env, options, where, who);
  std::unique_ptr<Impl> impl;
  try {
    if (backend == "gloo") {
#ifdef DETR_WITH_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(options.timeout);
      if (env.gloo_socket_ifname)
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*env.gloo_socket_ifname));
      else if (is_loopback(env.master_addr))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      auto b = std::make_unique<BackendImpl<c10d::ProcessGroupGloo>>();
      b->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, o);
      b->timeout = options.timeout;
      impl = std::move(b);
#endif
    } else {
#ifdef DETR_WITH_NCCL
      // Without async error handling a dead peer leaves NCCL collectives waiting forever.
      setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      // This rank's GPU is the current device before NCCL creates its communicators, and the one
      // its barriers run on (as torch.cuda.set_device(local_rank) before init_process_group).
      const auto gpu = options.device.has_index() ? options.device.index() : c10::DeviceIndex(0);
      c10::cuda::set_device(gpu);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = options.timeout;
      auto b = std::make_unique<BackendImpl<c10d::ProcessGroupNCCL>>();
      b->barrier_devices = {gpu};
      b->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, o);
      b->timeout = options.timeout;
      impl = std::move(b);
#endif
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed " + backend + " process group for " + who + " at " + where +
                             " failed within " + seconds(options.timeout) + " (did all " +
                             std::to_string(env.world_size) + " processes start?): " + error_text(e));
  }
  impl->store = store;
  impl->device = options.device;
  std::unique_ptr<ProcessGroup> group(
      new ProcessGroup(std::move(impl), env.rank, env.world_size, backend, options.timeout));
  group->barrier();  // as upstream: every rank is up before anything else happens
  return group;
#else
  throw std::runtime_error("unreachable");
#endif
}

void ProcessGroup::fail(const char* op, const std::exception& e) const {
  throw std::runtime_error("distributed " + std::string(op) + " failed on rank " + std::to_string(rank_) + " of " +
                           std::to_string(world_size_) + " (a peer exited, crashed or hung past --dist_timeout " +
                           seconds(timeout_) + "): " + error_text(e));
}

#if defined(DETR_WITH_GLOO) || defined(DETR_WITH_NCCL)

void ProcessGroup::all_reduce_sum(torch::Tensor& tensor) {
  try {
    const bool here = tensor.device() == impl_->device;  // NCCL needs the rank's GPU
    std::vector<torch::Tensor> t{here ? tensor : tensor.to(impl_->device)};
    impl_->allreduce(t);
    if (!here) tensor.copy_(t[0]);
  } catch (const std::exception& e) {
    fail("all-reduce", e);
  }
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors) {
  try {
    for (auto& t : tensors) {
      const bool here = t.device() == impl_->device;
      std::vector<torch::Tensor> one{here ? t : t.to(impl_->device)};
      impl_->broadcast(one);
      if (!here) t.copy_(one[0]);
    }
  } catch (const std::exception& e) {
    fail("broadcast", e);
  }
}

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& bytes) {
  const auto dev = impl_->device;
  try {
    // Lengths first, then every rank's bytes padded to the longest.
    std::vector<torch::Tensor> len_in{torch::full({1}, static_cast<int64_t>(bytes.size()), torch::kLong).to(dev)};
    std::vector<std::vector<torch::Tensor>> len_out(1);
    for (int r = 0; r < world_size_; ++r) len_out[0].push_back(torch::zeros({1}, torch::kLong).to(dev));
    impl_->allgather(len_out, len_in);
    std::vector<int64_t> lengths;
    int64_t longest = 1;
    for (auto& t : len_out[0]) {
      lengths.push_back(t.cpu().item<int64_t>());
      longest = std::max(longest, lengths.back());
    }
    auto mine = torch::zeros({longest}, torch::kByte);
    std::memcpy(mine.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    std::vector<torch::Tensor> in{mine.to(dev)};
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < world_size_; ++r) out[0].push_back(torch::zeros({longest}, torch::kByte).to(dev));
    impl_->allgather(out, in);
    std::vector<std::string> result;
    for (int r = 0; r < world_size_; ++r) {
      auto host = out[0][static_cast<size_t>(r)].cpu().contiguous();
      result.emplace_back(reinterpret_cast<const char*>(host.data_ptr<uint8_t>()),
                          static_cast<size_t>(lengths[static_cast<size_t>(r)]));
    }
    return result;
  } catch (const std::exception& e) {
    fail("all-gather", e);
  }
}

void ProcessGroup::barrier() {
  try {
    impl_->barrier();
  } catch (const std::exception& e) {
    fail("barrier", e);
  }
}

#else

void ProcessGroup::all_reduce_sum(torch::Tensor&) {}
void ProcessGroup::broadcast(std::vector<torch::Tensor>&) {}
std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& bytes) { return {bytes}; }
void ProcessGroup::barrier() {}

#endif

// ---- model state and gradients --------------------------------------------------------------------

namespace {
// Tensors grouped by (dtype, device), in the given order.
std::vector<std::vector<size_t>> group_by_kind(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  std::map<std::string, std::vector<size_t>> open;  // kind -> current bucket being filled
  std::map<std::string, int64_t> open_bytes;
  std::vector<std::vector<size_t>> buckets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const std::string kind = std::string(c10::toString(t.scalar_type())) + "@" + t.device().str();
    open[kind].push_back(i);
    open_bytes[kind] += t.numel() * static_cast<int64_t>(t.element_size());
    if (bucket_bytes > 0 && open_bytes[kind] >= bucket_bytes) {
      buckets.push_back(std::move(open[kind]));
      open.erase(kind);
      open_bytes.erase(kind);
    }
  }
  for (auto& [kind, b] : open)
    if (!b.empty()) buckets.push_back(std::move(b));
  return buckets;
}
}  // namespace

void broadcast_module(torch::nn::Module& module, ProcessGroup& group) {
  if (group.world_size() <= 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> state;
  for (const auto& p : module.parameters()) state.push_back(p);
  for (const auto& b : module.buffers()) state.push_back(b);
  for (const auto& bucket : group_by_kind(state, /*bucket_bytes=*/0)) {
    std::vector<torch::Tensor> members;
    for (size_t i : bucket) members.push_back(state[i]);
    std::vector<torch::Tensor> flat{flatten(members)};
    group.broadcast(flat);
    unflatten_into(flat[0], members);
  }
}

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, ProcessGroup& group, int64_t bucket_bytes)
    : group_(group) {
  for (auto it = params.rbegin(); it != params.rend(); ++it)  // backward produces the last layers first
    if (it->requires_grad()) params_.push_back(*it);
  buckets_ = group_by_kind(params_, bucket_bytes);
}

void GradientReducer::average() {
  if (group_.world_size() <= 1) return;
  torch::NoGradGuard no_grad;
  for (const auto& bucket : buckets_) {
    std::vector<torch::Tensor> grads;
    for (size_t i : bucket) {
      auto& p = params_[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad());
    }
    auto flat = flatten(grads);
    flat.div_(group_.world_size());  // DDP divides before summing
    group_.all_reduce_sum(flat);
    unflatten_into(flat, grads);
  }
}

}  // namespace detr::dist
