// The job a command runs in (upstream util/misc.py init_distributed_mode and the set-up at the top of
// main.py): the device, CPU threads, convolution kernels, the optional process group, main-rank
// output and the stop token. detr_train, detr_bench, detr_predict, detr_parity and the public Detector
// build one from their flags and the launch environment; each setting has one rule, here. (detr_eval
// computes on no device: it needs none.)
//
//   auto ctx = RunContext(options, Launch::from_environment(args.dist_url));
//   ctx.out() << "only rank 0 prints\n";
//   model->set_conv_kernels(ctx.conv_kernels());
//   while (!ctx.stopping()) ...
#pragma once
#include <filesystem>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "models/backbone.h"
#include "src/distributed.h"

namespace detr {

// What the process's environment says about the launch. Read once, at the command-line boundary;
// nothing below it reads environment variables.
struct Launch {
  std::optional<dist::Env> job;  // RANK/WORLD_SIZE (torchrun, PyTorchJob) or SLURM; none: one process
  int omp_num_threads = 0;       // a launcher's OMP_NUM_THREADS; 0: not set
  bool onepanel = false;         // ONEPANEL_RESOURCE_UID is set: a Onepanel workflow pod
  std::string weights_cache;     // torchvision's cache ($TORCH_HOME/hub/checkpoints, ...)

  static Launch from_environment(const std::string& dist_url = "env://");
  // One process, whatever started it (inference, tools): reads OMP_NUM_THREADS and the weights cache only.
  static Launch local();
  bool distributed() const { return job && job->world_size > 1; }
};

enum class DistBackend { kAuto, kGloo, kNccl };           // auto: nccl on CUDA, gloo on CPU
DistBackend parse_dist_backend(const std::string& name);  // "" | auto | gloo | nccl
std::string to_string(DistBackend backend);

struct RunOptions {
  std::optional<torch::Device> device;  // none: CUDA when available, else CPU (--device auto)
  int64_t num_threads = 0;              // 0: all usable CPUs (a job: OMP_NUM_THREADS, else a share); < 0: leave as is
  models::ConvAlgorithm conv_algorithm = models::ConvAlgorithm::kWinograd;
  DistBackend dist_backend = DistBackend::kAuto;
  double dist_timeout_s = 1800;
  bool watch_signals = false;    // SIGINT/SIGTERM request a stop once armed (a second one exits at once)
  bool cudnn_benchmark = false;  // cuDNN autotuning: for training and benchmarks, whose input sizes repeat
};

// "auto" | cpu | cuda | cuda:N, as --device takes it; throws std::invalid_argument naming the value.
std::optional<torch::Device> parse_device(const std::string& name);

// The intra-op thread rule: --num_threads (> 0); else in a job the launcher's OMP_NUM_THREADS or an
// equal share of the usable CPUs among the processes on this machine; else every usable CPU (a
// shell's OMP_NUM_THREADS does not shrink a single process: LibTorch from Debian would start with 1).
int resolve_threads(int64_t num_threads, const Launch& launch, int usable_cpus);

// Stop requests from SIGINT/SIGTERM, received by a thread of its own (sigwait), so no handler and no
// process-wide flag: the token is the state. Until arm() (set-up, evaluation-only runs) a signal ends
// the process at once, as without the token; once armed the first signal asks to stop, a second exits
// at once with 128 + signal.
class StopToken {
 public:
  explicit StopToken(bool watch_signals);
  ~StopToken();
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  void arm();  // from now on a signal asks to stop
  bool requested() const;
  int signal() const;         // the signal that asked; 0 when none (or asked by request())
  void request(int sig = 0);  // as a signal would
  // Removed, with everything under it, when a signal ends the process at once (before arm(), or a
  // second signal): a run's scratch folder is never left behind.
  void remove_on_forced_exit(const std::filesystem::path& dir);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class RunContext {
 public:
  RunContext(const RunOptions& options, const Launch& launch);
  ~RunContext();
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;

  const torch::Device& device() const { return device_; }
  int threads() const { return threads_; }
  models::ConvKernels conv_kernels() const;
  std::string conv_algorithm_in_use() const;  // "winograd" only where this build and CPU have it
  const Launch& launch() const { return launch_; }

  dist::ProcessGroup* group() const { return group_.get(); }
  int rank() const { return group_ ? group_->rank() : 0; }
  int world_size() const { return group_ ? group_->world_size() : 1; }
  bool main_rank() const { return rank() == 0; }
  // Upstream's setup_for_distributed: rank 0 prints, the others' output goes nowhere.
  std::ostream& out() const;

  // This process was asked to stop (a signal here).
  bool stop_requested() const { return stop_.requested(); }
  StopToken& stop_token() { return stop_; }
  // Whether any rank was asked to stop: in a job a collective, so every rank calls it at the same
  // points and all of them stop after the same step.
  bool stopping() const;
  // "by signal 15" or "by a signal to another rank".
  std::string stop_reason() const;

  // Downloads: the first process of each machine fetches, the others then find the file cached.
  std::string local_leader_first(const std::function<std::string()>& fetch) const;

  std::string describe() const;  // "device cpu, 2 threads" (+ the job) for start-up logs

 private:
  Launch launch_;
  RunOptions options_;
  mutable StopToken stop_;  // first: signals are blocked before any thread starts
  torch::Device device_{torch::kCPU};
  int threads_ = 1;
  std::unique_ptr<dist::ProcessGroup> group_;
  std::unique_ptr<std::ostream> null_out_;
  std::unique_ptr<std::ostream> safe_out_;  // std::cout through util::TerminalSafeStream
};

}  // namespace detr
