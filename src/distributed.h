// Data-parallel training on c10d process groups (upstream util/misc.py init_distributed_mode,
// reduce_dict, all_gather, and what DistributedDataParallel does to gradients), without Python:
// a TCPStore rendezvous from the launcher's environment, Gloo on CPU, NCCL on CUDA.
//
// Launch as upstream: torchrun --nproc_per_node=N --no-python detr_train ..., a Kubernetes
// PyTorchJob, SLURM, or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace detr::dist {

// Where this process sits in the job, as the launcher described it.
struct Env {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source;  // "RANK/WORLD_SIZE", "torchrun", "SLURM": for messages
  // torchrun (TORCHELASTIC_USE_AGENT_STORE=True): its agent hosts the TCPStore; this restart's number.
  std::optional<std::string> agent_store_attempt;
  std::optional<std::string> gloo_socket_ifname;  // GLOO_SOCKET_IFNAME: the interface Gloo uses
};

// RANK + WORLD_SIZE (+ LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), else SLURM_PROCID +
// SLURM_NTASKS (+ SLURM_LOCALID); nullopt when neither is set. `dist_url` "env://" (default) or
// "tcp://host:port" overrides MASTER_ADDR/MASTER_PORT as upstream's init_method does. A malformed
// value throws naming the variable.
std::optional<Env> env_from_environment(const std::string& dist_url = "env://");

// True when this build has c10d's Gloo (and so can run multi-process at all).
bool gloo_available();
// True when this build has c10d's NCCL.
bool nccl_available();

struct InitOptions {
  std::string backend;  // "" = nccl on CUDA (when built with it), gloo otherwise
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // rendezvous and every collective
  torch::Device device = torch::kCPU;                           // where collectives' tensors live
};

// One process group for the whole job. Every collective is called in the same order on every rank;
// a peer that dies or hangs makes the others throw (no hang past the timeout).
class ProcessGroup {
 public:
  // The rendezvous: rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT; throws with a clear message
  // when a peer never arrives within the timeout.
  static std::unique_ptr<ProcessGroup> init(const Env& env, const InitOptions& options);
  ~ProcessGroup();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  const std::string& backend() const { return backend_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  void all_reduce_sum(torch::Tensor& tensor);           // in place, on every rank
  void broadcast(std::vector<torch::Tensor>& tensors);  // rank 0's values, in place
  // Every rank's bytes (any length), in rank order.
  std::vector<std::string> all_gather_bytes(const std::string& bytes);
  void barrier();

  struct Impl;  // the c10d backend

 private:
  ProcessGroup(
      std::unique_ptr<Impl> impl, int rank, int world_size, std::string backend, std::chrono::milliseconds timeout);
  [[noreturn]] void fail(const char* op, const std::exception& e) const;
  std::unique_ptr<Impl> impl_;
  int rank_, world_size_;
  std::string backend_;
  std::chrono::milliseconds timeout_;
};

// Parameters and buffers from rank 0 to every rank (DDP's construction-time broadcast).
void broadcast_module(torch::nn::Module& module, ProcessGroup& group);

// DDP's gradient averaging: after backward, gradients are copied into flat buckets of about
// `bucket_bytes` (parameters in reverse registration order, as DDP fills them), each bucket is
// summed with one all-reduce and divided by the world size, and copied back. A parameter without a
// gradient on this rank contributes zeros (every rank must reduce the same buckets).
class GradientReducer {
 public:
  GradientReducer(std::vector<torch::Tensor> params, ProcessGroup& group, int64_t bucket_bytes = 25 << 20);
  void average();
  size_t num_buckets() const { return buckets_.size(); }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<std::vector<size_t>> buckets_;  // indices into params_, same dtype and device each
  ProcessGroup& group_;
};

// Everything a training step needs to take part in a job: the group and its gradient reducer.
struct StepSync {
  ProcessGroup* group = nullptr;
  GradientReducer* reducer = nullptr;
};

}  // namespace detr::dist
