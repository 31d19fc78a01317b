#include "src/run_context.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "src/hub.h"
#include "util/cpu.h"
#include "util/terminal.h"

namespace detr {

Launch Launch::from_environment(const std::string& dist_url) {
  Launch l = local();
  l.job = dist::env_from_environment(dist_url);
  l.onepanel = std::getenv("ONEPANEL_RESOURCE_UID") != nullptr;
  return l;
}

Launch Launch::local() {
  Launch l;
  if (const char* omp = std::getenv("OMP_NUM_THREADS")) l.omp_num_threads = std::max(0, std::atoi(omp));
  l.weights_cache = hub::cache_dir().string();
  return l;
}

DistBackend parse_dist_backend(const std::string& name) {
  if (name.empty() || name == "auto") return DistBackend::kAuto;
  if (name == "gloo") return DistBackend::kGloo;
  if (name == "nccl") return DistBackend::kNccl;
  throw std::invalid_argument("--dist_backend must be gloo or nccl, got '" + name + "'");
}

std::string to_string(DistBackend backend) {
  switch (backend) {
    case DistBackend::kGloo: return "gloo";
    case DistBackend::kNccl: return "nccl";
    default: return "";
  }
}

std::optional<torch::Device> parse_device(const std::string& name) {
  if (name == "auto") return std::nullopt;
  if (name != "cpu" && name.rfind("cuda", 0) != 0)
    throw std::invalid_argument("--device must be auto, cpu, cuda or cuda:N, got '" + name + "'");
  try {
    return torch::Device(name);
  } catch (const c10::Error&) {
    throw std::invalid_argument("--device must be auto, cpu, cuda or cuda:N, got '" + name + "'");
  }
}

// ---- StopToken: a sigwait thread owns SIGINT/SIGTERM while the token lives

struct StopToken::Impl {
  std::atomic<int> signal{0};
  std::atomic<bool> requested{false};
  std::atomic<bool> armed{false};
  std::atomic<bool> closing{false};
  sigset_t set{}, previous{};
  std::thread watcher;
  std::mutex doomed_mutex;
  std::vector<std::filesystem::path> doomed;  // removed before a forced exit

  [[noreturn]] void exit_now(int sig) {
    {
      std::lock_guard<std::mutex> lock(doomed_mutex);
      std::error_code ec;
      for (int pass = 0; pass < 2; ++pass)  // twice: a file the main thread was writing meanwhile
        for (const auto& d : doomed) std::filesystem::remove_all(d, ec);
    }
    std::_Exit(128 + sig);
  }

  void watch() {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (closing) return;
      if (!armed || requested) exit_now(sig);  // not stoppable yet, or a second signal: now
      signal = sig;
      requested = true;
    }
  }
};

StopToken::StopToken(bool watch_signals) : impl_(std::make_unique<Impl>()) {
  if (!watch_signals) return;
  sigemptyset(&impl_->set);
  sigaddset(&impl_->set, SIGINT);
  sigaddset(&impl_->set, SIGTERM);
  // Blocked in this thread and every thread it starts from now on; the watcher receives them.
  pthread_sigmask(SIG_BLOCK, &impl_->set, &impl_->previous);
  impl_->watcher = std::thread([impl = impl_.get()] { impl->watch(); });
}

StopToken::~StopToken() {
  if (!impl_->watcher.joinable()) return;
  impl_->closing = true;
  pthread_kill(impl_->watcher.native_handle(), SIGTERM);  // wakes sigwait, which sees `closing`
  impl_->watcher.join();
  pthread_sigmask(SIG_SETMASK, &impl_->previous, nullptr);
}

void StopToken::arm() { impl_->armed = true; }
void StopToken::remove_on_forced_exit(const std::filesystem::path& dir) {
  std::lock_guard<std::mutex> lock(impl_->doomed_mutex);
  impl_->doomed.push_back(dir);
}
bool StopToken::requested() const { return impl_->requested; }
int StopToken::signal() const { return impl_->signal; }
void StopToken::request(int sig) {
  impl_->signal = sig;  // first: a reader that sees `requested` sees the signal
  impl_->requested = true;
}

// ---- RunContext

namespace {

torch::Device resolve_device(const std::optional<torch::Device>& choice, const Launch& launch) {
  // CUDA is asked about only when the choice is left to it (--device cpu never initialises CUDA).
  torch::Device d = choice                        ? *choice
                    : torch::cuda::is_available() ? torch::Device(torch::kCUDA)
                                                  : torch::Device(torch::kCPU);
  if (d.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("--device " + d.str() +
                             ": CUDA is not available in this build or machine (use --device cpu)");
  if (launch.distributed() && d.is_cuda() && !d.has_index()) {  // one GPU per local rank, modulo the visible ones
    const auto visible = std::max<int64_t>(1, static_cast<int64_t>(torch::cuda::device_count()));
    d = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch.job->local_rank % visible));
  }
  return d;
}

}  // namespace

int resolve_threads(int64_t num_threads, const Launch& launch, int usable_cpus) {
  if (num_threads > 0) return static_cast<int>(num_threads);
  if (!launch.distributed()) return usable_cpus;
  if (launch.omp_num_threads > 0) return launch.omp_num_threads;
  return std::max(1, usable_cpus / std::max(1, launch.job->local_world_size));
}

RunContext::RunContext(const RunOptions& options, const Launch& launch)
    : launch_(launch), options_(options), stop_(options.watch_signals) {
  device_ = resolve_device(options.device, launch);
  if (options.num_threads >= 0) {
    threads_ = resolve_threads(options.num_threads, launch, util::usable_cpus());
    torch::set_num_threads(threads_);
  } else {
    threads_ = torch::get_num_threads();
  }
  if (device_.is_cuda() && options.cudnn_benchmark) at::globalContext().setBenchmarkCuDNN(true);
  null_out_ = std::make_unique<std::ostream>(nullptr);
  safe_out_ = std::make_unique<util::TerminalSafeStream>(std::cout);
  if (!launch.distributed()) return;
  dist::InitOptions io;
  io.backend = to_string(options.dist_backend);
  io.timeout = std::chrono::milliseconds(static_cast<int64_t>(options.dist_timeout_s * 1000));
  io.device = device_;
  group_ = dist::ProcessGroup::init(*launch.job, io);
}

RunContext::~RunContext() = default;

models::ConvKernels RunContext::conv_kernels() const {
  models::ConvKernels k;
  k.algorithm = options_.conv_algorithm;
  return k;
}

std::string RunContext::conv_algorithm_in_use() const {
  const bool winograd = options_.conv_algorithm == models::ConvAlgorithm::kWinograd && models::winograd_available();
  return winograd ? "winograd" : "direct";
}

std::ostream& RunContext::out() const { return main_rank() ? *safe_out_ : *null_out_; }

bool RunContext::stopping() const {
  if (!group_) return stop_requested();
  auto votes = torch::full({1}, stop_requested() ? 1.0f : 0.0f);
  group_->all_reduce_sum(votes);
  return votes.item<float>() > 0;
}

std::string RunContext::stop_reason() const {
  return stop_.signal() ? "by signal " + std::to_string(stop_.signal())
                        : std::string(stop_requested() ? "on request" : "by a signal to another rank");
}

std::string RunContext::local_leader_first(const std::function<std::string()>& fetch) const {
  if (!group_) return fetch();
  if (launch_.job->local_rank == 0) {
    auto path = fetch();
    group_->barrier();
    return path;
  }
  group_->barrier();
  return fetch();
}

std::string RunContext::describe() const {
  std::ostringstream o;
  o << "device " << device_ << ", " << threads_ << " threads";
  if (device_.is_cpu()) o << ", " << conv_algorithm_in_use() << " 3x3 convolutions";
  if (group_)
    o << "; distributed: " << world_size() << " processes (" << launch_.job->source << "), backend "
      << group_->backend() << ", rendezvous " << launch_.job->master_addr << ":" << launch_.job->master_port
      << ", timeout " << options_.dist_timeout_s << " s";
  return o.str();
}

}  // namespace detr
