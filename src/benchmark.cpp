#include "src/benchmark.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "models/detr.h"
#include "models/flops.h"
#include "models/post_process.h"
#include "models/set_criterion.h"
#include "models/winograd_conv.h"
#include "src/amp.h"
#ifdef DETR_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include "src/distributed.h"
#include "src/engine.h"
#include "src/util/cpu.h"
#include "src/optimizer.h"

namespace detr {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // kB -> GB
}

// The BLAS library this process loaded (LibTorch links libblas.so.3; Debian's alternatives decide).
std::string blas_in_use() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto p = line.find('/');
    if (p == std::string::npos) continue;
    const auto path = line.substr(p);
    if (path.find("blas") != std::string::npos || path.find("mkl") != std::string::npos) {
      std::error_code ec;
      auto real = fs::canonical(path, ec);
      return ec ? path : real.string();
    }
  }
  return "unknown";
}

// The most GPU memory the CUDA caching allocator handed out on `device` (0 on CPU builds and devices).
double peak_cuda_gb(const torch::Device& device) {
#ifdef DETR_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);  // [0]: all pools
  }
#endif
  (void)device;
  return 0;
}

// The malloc this process runs on (tcmalloc when the executable links it, else glibc's).
std::string allocator_in_use() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("tcmalloc") != std::string::npos) return "tcmalloc";
  return "glibc";
}

// The machine's dense matrix-product rate in the precision a run computes in (TFLOP/s): the
// denominator of model FLOP utilisation. float32 on CUDA counts TF32 when cuDNN's convolutions use it
// (LibTorch's default), so the figure is never flattered by a slower peak.
std::pair<double, std::string> peak_tflops(const torch::Device& device, Precision precision) {
  torch::NoGradGuard no_grad;
  const auto dtype = precision == Precision::bf16 ? torch::kBFloat16
                     : precision == Precision::fp16 ? torch::kHalf : torch::kFloat;
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device)).to(dtype);
  auto& ctx = at::globalContext();
  const bool tf32 = ctx.allowTF32CuBLAS();
  if (device.is_cuda() && dtype == torch::kFloat) ctx.setAllowTF32CuBLAS(ctx.allowTF32CuDNN());
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const int iters = device.is_cuda() ? 20 : 3;
    sync();
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) torch::mm(a, b);
    sync();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rep > 0) best = std::max(best, 2.0 * n * n * n * iters / s / 1e12);  // rep 0 warms up
  }
  const std::string what = std::string(c10::toString(dtype)) +
                           (device.is_cuda() && dtype == torch::kFloat && ctx.allowTF32CuBLAS() ? " (TF32)" : "") +
                           " matmul " + std::to_string(n) + "^3";
  ctx.setAllowTF32CuBLAS(tf32);
  return {best, what};
}

models::ModelConfig bench_config(const std::string& name) {
  models::ModelConfig c;
  c.num_classes = 4;
  if (name == "default") return c;
  if (name == "small") {
    c.backbone = "resnet18";
    c.hidden_dim = 128;
    c.dim_feedforward = 512;
    c.enc_layers = c.dec_layers = 2;
    c.nheads = 4;
    c.num_queries = 20;
    return c;
  }
  throw std::invalid_argument("--config must be default or small, got '" + name + "'");
}

}  // namespace

nlohmann::json run_benchmark(const BenchOptions& o) {
  // Launched as a data-parallel job (RANK/WORLD_SIZE): every rank trains its shard, gradients are
  // averaged as in detr_train, and images/s counts the whole job's images.
  const auto env = dist::env_from_environment();
  const bool distributed = env && env->world_size > 1;
  const int threads = o.num_threads > 0 ? static_cast<int>(o.num_threads)
                                        : std::max(1, util::usable_cpus() / (distributed ? env->local_world_size : 1));
  torch::set_num_threads(threads);
  torch::Device device = o.device == "auto"
                             ? (torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU))
                             : torch::Device(o.device);
  if (distributed && device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, env->local_rank);
  const Precision precision = parse_precision(o.amp);
  check_precision(precision, device);
  models::set_conv_algorithm(models::parse_conv_algorithm(o.conv_algorithm));
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  GradScaler scaler(precision == Precision::fp16);
  const AmpState amp{precision, &scaler};
  std::unique_ptr<dist::ProcessGroup> group;
  if (distributed) {
    dist::InitOptions io;
    io.device = device;
    io.timeout = std::chrono::minutes(10);
    group = dist::ProcessGroup::init(*env, io);
  }
  const int world = group ? group->world_size() : 1;
  std::ostream null_stream(nullptr);
  std::ostream& progress = !group || group->is_main() ? std::cerr : null_stream;
  const int64_t needed = o.batch_size * world * (o.warmup + o.steps * o.repeats);
  fs::path dir = o.data_dir.empty() ? fs::temp_directory_path() / ("detr_bench_" + std::to_string(::getpid())) : fs::path(o.data_dir);
  datasets::SyntheticExportOptions so;
  so.num_images = std::max<int64_t>(needed, 2 * o.batch_size * world);
  so.width = o.width;
  so.height = o.height;
  so.num_classes = 3;
  so.seed = o.seed;
  datasets::write_synthetic_cvat_export(dir, so);
  auto data = datasets::load_coco(datasets::discover_coco(dir).train);

  torch::manual_seed(o.seed);
  auto config = bench_config(o.config);
  auto model = models::build_model(config);
  model->to(device);

  auto criterion = models::build_criterion(config);
  criterion->to(device);
  AdamW optimizer(*model, {});
  std::unique_ptr<dist::GradientReducer> reducer;
  dist::StepSync sync;
  if (group) {
    dist::broadcast_module(*model, *group);
    reducer = std::make_unique<dist::GradientReducer>(model->parameters(), *group);
    sync = {group.get(), reducer.get()};
  }

  nlohmann::json result{{"config", o.config}, {"batch_size", o.batch_size}, {"device", device.str()},
                        {"threads", threads}, {"blas", blas_in_use()}, {"allocator", allocator_in_use()}, {"num_workers", o.num_workers},
                        {"image_size", std::to_string(o.width) + "x" + std::to_string(o.height)},
                        {"warmup_steps", o.warmup}, {"steps", o.steps}, {"repeats", o.repeats},
                        {"world_size", world}, {"backend", group ? group->backend() : "none"},
                        {"amp", to_string(precision)},
                        {"conv_algorithm", models::conv_algorithm() == models::ConvAlgorithm::kWinograd && models::winograd_available() ? "winograd" : "direct"},
                        {"libtorch", TORCH_VERSION}};

  auto measure = [&](bool train) {
    datasets::CocoDetection ds(data, datasets::TransformConfig{}, train);
    datasets::LoaderOptions lo;
    lo.batch_size = o.batch_size;
    lo.num_workers = static_cast<int>(o.num_workers);
    lo.shuffle = train;
    lo.drop_last = true;
    lo.seed = o.seed;
    lo.rank = group ? group->rank() : 0;
    lo.world_size = world;
    lo.pin_memory = device.is_cuda();
    datasets::DataLoader loader(ds, lo);
    loader.start_epoch(0);
    std::vector<double> ips, tflops, step_s, data_s, h2d, fwd, matcher, loss, bwd, gsync, opt;
    for (int64_t r = -1; r < o.repeats; ++r) {  // r = -1: warm-up
      const int64_t n = r < 0 ? o.warmup : o.steps;
      const auto t_rep = Clock::now();
      double rep_flops = 0;  // the model arithmetic of this repetition's batches (models/flops.h)
      for (int64_t i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        auto batch = loader.next();
        if (!batch) {
          loader.start_epoch(r + 2);
          batch = loader.next();
        }
        const double wait = std::chrono::duration<double>(Clock::now() - t0).count();
        StepTimings t;
        if (train) {
          model->train();
          train_step(model, criterion, optimizer, *batch, device, 0.1, &t, group ? &sync : nullptr, &amp);
        } else {
          torch::NoGradGuard no_grad;
          model->eval();
          const auto e0 = Clock::now();
          auto samples = batch->samples.to(device, true);
          std::vector<util::Target> targets;
          for (const auto& tg : batch->targets) targets.push_back(tg.to(device));
          auto out = model->forward(samples);
          auto res = criterion->forward(out, targets);
          std::vector<torch::Tensor> sizes;
          for (const auto& tg : batch->targets) sizes.push_back(tg.orig_size);
          models::post_process(out, torch::stack(sizes).to(device));
          if (device.is_cuda()) torch::cuda::synchronize();
          t.forward = std::chrono::duration<double>(Clock::now() - e0).count();
          t.matcher = criterion->last_matcher_seconds;
        }
        if (r < 0) continue;
        const auto& x = batch->samples.tensors;  // [B, 3, H, W] padded
        const auto f = models::model_flops(config, x.size(2), x.size(3));
        rep_flops += static_cast<double>(x.size(0) * world) * (train ? f.train() : f.forward());
        const double total = std::chrono::duration<double>(Clock::now() - t0).count();
        step_s.push_back(total);
        data_s.push_back(wait);
        h2d.push_back(t.h2d);
        fwd.push_back(t.forward);
        matcher.push_back(t.matcher);
        loss.push_back(t.loss);
        bwd.push_back(t.backward);
        gsync.push_back(t.grad_sync);
        opt.push_back(t.optimizer);
      }
      if (r >= 0) {
        const double secs = std::chrono::duration<double>(Clock::now() - t_rep).count();
        ips.push_back(static_cast<double>(n * o.batch_size * world) / secs);
        tflops.push_back(rep_flops / secs / 1e12);
        progress << (train ? "train" : "eval") << " repetition " << r + 1 << "/" << o.repeats << ": "
                  << std::fixed << std::setprecision(3) << ips.back() << " images/s\n";
      }
    }
    nlohmann::json phases{{"data_wait", median(data_s)}, {"host_to_device", median(h2d)}, {"forward", median(fwd)},
                          {"matcher", median(matcher)}, {"loss", median(loss)}, {"backward", median(bwd)},
                          {"grad_sync", median(gsync)}, {"optimizer", median(opt)}};
    return nlohmann::json{{"images_per_s", median(ips)},
                          {"s_per_step", median(step_s)},
                          {"model_tflops_per_s", median(tflops)},
                          {"images_per_s_runs", ips},
                          {"phase_s_per_step", phases}};
  };
  // The data pipeline alone: decode + augment + collate, as fast as the loader delivers.
  auto measure_data = [&] {
    datasets::CocoDetection ds(data, datasets::TransformConfig{}, /*train=*/true);
    datasets::LoaderOptions lo;
    lo.batch_size = o.batch_size;
    lo.num_workers = static_cast<int>(o.num_workers);
    lo.seed = o.seed;
    datasets::DataLoader loader(ds, lo);
    std::vector<double> ips;
    for (int64_t r = 0; r < o.repeats; ++r) {
      loader.start_epoch(r);
      const auto t0 = Clock::now();
      int64_t images = 0;
      while (auto b = loader.next()) images += b->samples.tensors.size(0);
      ips.push_back(static_cast<double>(images) / std::chrono::duration<double>(Clock::now() - t0).count());
      progress << "data repetition " << r + 1 << "/" << o.repeats << ": " << ips.back() << " images/s\n";
    }
    return nlohmann::json{{"images_per_s", median(ips)}, {"images_per_s_runs", ips}};
  };
  if (o.mode == "data") result["data"] = measure_data();
  if (o.mode == "train" || o.mode == "both") result["train"] = measure(true);
  if ((o.mode == "eval" || o.mode == "both") && group)
    throw std::runtime_error("detr_bench --mode eval runs on one process (launch it without WORLD_SIZE)");
  if (o.mode == "eval" || o.mode == "both") result["eval"] = measure(false);
  if (o.mode != "data") {  // model FLOP utilisation against this machine's measured matmul peak
    const auto [peak, what] = peak_tflops(device, precision);
    result["peak_tflops"] = peak;
    result["peak_measured_with"] = what;
    for (const char* mode : {"train", "eval"})
      if (result.contains(mode)) result[mode]["mfu"] = result[mode]["model_tflops_per_s"].get<double>() / peak;
  }
  result["peak_rss_gb"] = peak_rss_gb();
  result["peak_cuda_gb"] = peak_cuda_gb(device);
  result["main_rank"] = !group || group->is_main();
  if (o.data_dir.empty()) fs::remove_all(dir);
  return result;
}

std::string format_benchmark(const nlohmann::json& r) {
  std::ostringstream s;
  s << "config " << r["config"].get<std::string>() << ", batch " << r["batch_size"];
  if (r.value("world_size", 1) > 1) s << " x " << r["world_size"] << " processes (" << r["backend"].get<std::string>() << ")";
  s << ", " << r["image_size"].get<std::string>()
    << " images, device " << r["device"].get<std::string>() << ", " << r["threads"] << " threads, BLAS "
    << r["blas"].get<std::string>() << ", allocator " << r.value("allocator", "?") << ", LibTorch "
    << r["libtorch"].get<std::string>() << "\n";
  if (r.contains("data"))
    s << std::fixed << std::setprecision(3) << "data (decode + augment + collate, " << r["num_workers"]
      << " workers): " << r["data"]["images_per_s"].get<double>() << " images/s\n";
  for (const char* mode : {"train", "eval"}) {
    if (!r.contains(mode)) continue;
    const auto& m = r[mode];
    s << std::fixed << std::setprecision(3) << mode << ": " << m["images_per_s"].get<double>() << " images/s, "
      << m["s_per_step"].get<double>() << " s/step (median); per phase (s/step):";
    for (const auto& [k, v] : m["phase_s_per_step"].items()) s << " " << k << " " << v.get<double>();
    s << "\n";
    if (m.contains("mfu"))
      s << "  model arithmetic " << m["model_tflops_per_s"].get<double>() << " TFLOP/s = " << std::setprecision(1)
        << 100 * m["mfu"].get<double>() << "% of the measured peak " << std::setprecision(3)
        << r["peak_tflops"].get<double>() << " TFLOP/s (" << r["peak_measured_with"].get<std::string>() << ")\n";
  }
  s << "peak RSS " << std::setprecision(2) << r["peak_rss_gb"].get<double>() << " GB";
  if (r.value("peak_cuda_gb", 0.0) > 0) s << ", peak CUDA memory " << r["peak_cuda_gb"].get<double>() << " GB";
  s << "\n";
  return s.str();
}

}  // namespace detr
