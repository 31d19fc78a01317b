#include "src/tools/benchmark.h"

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
#include "models/build.h"
#include "models/detr.h"
#include "src/tools/flops.h"
#include "models/post_process.h"
#include "models/set_criterion.h"
#include "models/winograd_conv.h"
#include "src/run_context.h"
#include "src/amp.h"
#include "src/tools/op_profile.h"
#include "util/blas_kernels.h"
#ifdef DETR_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include "src/distributed.h"
#include "src/engine.h"
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
  const auto dtype = precision == Precision::bf16   ? torch::kBFloat16
                     : precision == Precision::fp16 ? torch::kHalf
                                                    : torch::kFloat;
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

models::ModelConfig bench_config(const std::string& name, bool masks) {
  models::ModelConfig c;
  c.num_classes = 4;
  c.masks = masks;
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
  if (name == "small_r50") {  // the mask head's comparison point: upstream's FPN widths need a ResNet-50
    c.hidden_dim = 128;
    c.dim_feedforward = 512;
    c.enc_layers = c.dec_layers = 2;
    c.num_queries = 20;
    return c;
  }
  throw std::invalid_argument("--config must be default, small or small_r50, got '" + name + "'");
}

// Generated CVAT-style data with enough images for every measured step of every rank.
datasets::CocoDataset bench_data(const BenchOptions& o, int world, const fs::path& dir) {
  datasets::SyntheticExportOptions so;
  const int64_t needed = o.batch_size * world * (o.warmup + o.steps * o.repeats);
  so.num_images = std::max<int64_t>(needed, 2 * o.batch_size * world);
  so.width = o.width;
  so.height = o.height;
  so.num_classes = 3;
  so.seed = o.seed;
  datasets::write_synthetic_cvat_export(dir, so);
  return datasets::load_coco(datasets::discover_coco(dir).train);
}

// Per-step figures of one measured repetition set.
struct StepSeries {
  std::vector<double> step_s, data_s, h2d, fwd, matcher, loss, bwd, gsync, opt;
  void add(double total, double wait, const StepTimings& t) {
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
  nlohmann::json phases() const {
    return {{"data_wait", median(data_s)}, {"host_to_device", median(h2d)}, {"forward", median(fwd)},
            {"matcher", median(matcher)},  {"loss", median(loss)},          {"backward", median(bwd)},
            {"grad_sync", median(gsync)},  {"optimizer", median(opt)}};
  }
};

// The first `top` ops by self time, per measured step, and the seconds measured around them.
nlohmann::json op_profile_json(const std::vector<OpTime>& ops, size_t top, const StepSeries& series) {
  const auto steps = static_cast<double>(std::max<size_t>(series.step_s.size(), 1));
  double wall = 0;
  for (double t : series.step_s) wall += t;
  nlohmann::json j = {{"steps", series.step_s.size()}, {"s_per_step", wall / steps}, {"ops", nlohmann::json::array()}};
  double rest = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i >= top) {
      rest += ops[i].self_s;
      continue;
    }
    j["ops"].push_back({{"op", ops[i].name},
                        {"self_s", ops[i].self_s / steps},
                        {"total_s", ops[i].total_s / steps},
                        {"calls", static_cast<double>(ops[i].calls) / steps}});
  }
  j["other_ops_self_s"] = rest / steps;
  return j;
}

// op_profile_json's table: self seconds per step, share of the step, calls per step, total seconds, op.
std::string format_op_profile(const nlohmann::json& p) {
  std::ostringstream s;
  const double step = std::max(p["s_per_step"].get<double>(), 1e-12);
  auto share = [&](double t) { return 100.0 * t / step; };
  s << std::fixed << "  ops by self time (LibTorch's profiler; " << p["steps"] << " steps, " << std::setprecision(3)
    << step << " s/step with the profiler on):\n    self s/step  share  calls/step  total s/step  op\n";
  for (const auto& o : p["ops"])
    s << std::setprecision(3) << "    " << std::setw(11) << o["self_s"].get<double>() << "  " << std::setprecision(1)
      << std::setw(4) << share(o["self_s"].get<double>()) << "%  " << std::setw(10) << o["calls"].get<double>() << "  "
      << std::setprecision(3) << std::setw(12) << o["total_s"].get<double>() << "  " << o["op"].get<std::string>()
      << "\n";
  const double rest = p["other_ops_self_s"].get<double>();
  s << std::setprecision(3) << "    " << std::setw(11) << rest << "  " << std::setprecision(1) << std::setw(4)
    << share(rest) << "%  the other ops\n";
  return s.str();
}

// The benchmark's model and everything a step needs, built as detr_train builds them.
class BenchRun {
 public:
  BenchRun(const BenchRun&) = delete;  // setup_ points at its own scaler and optimizer
  BenchRun& operator=(const BenchRun&) = delete;
  BenchRun(const BenchOptions& o, RunContext& ctx, datasets::CocoDataset data)
      : o_(o),
        ctx_(ctx),
        data_(std::move(data)),
        config_(bench_config(o.config, o.masks)),
        scaler_(o.amp == Precision::fp16) {
    torch::manual_seed(o.seed);
    auto model = models::build(config_);
    model.set_conv_kernels(ctx.conv_kernels());
    model.module().to(ctx.device());
    auto criterion = models::build_criterion(config_);
    criterion->to(ctx.device());
    optimizer_ = std::make_unique<AdamW>(model.module(), AdamWOptions{});
    if (ctx.group()) {
      dist::broadcast_module(model.module(), *ctx.group());
      reducer_ = std::make_unique<dist::GradientReducer>(model.module().parameters(), *ctx.group());
    }
    setup_ = {model, criterion, optimizer_.get(), ctx.device(), 0.1, {ctx.group(), reducer_.get()}, {o.amp, &scaler_}};
  }

  nlohmann::json measure(bool train);
  nlohmann::json measure_data();

 private:
  datasets::LoaderOptions loader_options(bool train) const {
    datasets::LoaderOptions lo;
    lo.batch_size = o_.batch_size;
    lo.num_workers = static_cast<int>(o_.num_workers);
    lo.shuffle = train;
    lo.drop_last = true;
    lo.seed = o_.seed;
    lo.rank = ctx_.rank();
    lo.world_size = ctx_.world_size();
    lo.pin_memory = ctx_.device().is_cuda();
    return lo;
  }
  // One step (train) or one evaluation batch, its phases in `t`.
  void step(bool train, const datasets::Batch& batch, StepTimings& t) {
    if (train) {
      setup_.model.module().train();
      train_step(setup_, batch, &t);
      return;
    }
    torch::NoGradGuard no_grad;
    setup_.model.module().eval();
    const auto e0 = Clock::now();
    EvalOutput results;  // losses and detections of this batch
    evaluate_batch(setup_, batch, results, &t);
    if (ctx_.device().is_cuda()) torch::cuda::synchronize();
    t.forward = std::chrono::duration<double>(Clock::now() - e0).count();
  }

  const BenchOptions& o_;
  RunContext& ctx_;
  datasets::CocoDataset data_;
  models::ModelConfig config_;
  GradScaler scaler_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  TrainSetup setup_;
};

nlohmann::json BenchRun::measure(bool train) {
  datasets::CocoDetection ds(data_, datasets::TransformConfig{}, train, config_.masks);
  datasets::DataLoader loader(ds, loader_options(train));
  loader.start_epoch(0);
  const int world = ctx_.world_size();
  std::vector<double> ips, tflops;
  StepSeries series;
  std::optional<OpProfile> profile;
  for (int64_t r = -1; r < o_.repeats; ++r) {  // r = -1: warm-up
    if (r == 0 && o_.profile > 0) profile.emplace();
    const int64_t n = r < 0 ? o_.warmup : o_.steps;
    const auto t_rep = Clock::now();
    double rep_flops = 0;  // the model arithmetic of this repetition's batches (src/tools/flops.h)
    for (int64_t i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      auto batch = loader.next();
      if (!batch) {
        loader.start_epoch(r + 2);
        batch = loader.next();
      }
      const double wait = std::chrono::duration<double>(Clock::now() - t0).count();
      StepTimings t;
      step(train, *batch, t);
      if (r < 0) continue;
      const auto& x = batch->samples.tensors;  // [B, 3, H, W] padded
      const auto f = models::model_flops(config_, x.size(2), x.size(3));
      rep_flops += static_cast<double>(x.size(0) * world) * (train ? f.train() : f.forward());
      series.add(std::chrono::duration<double>(Clock::now() - t0).count(), wait, t);
    }
    if (r < 0) continue;
    const double secs = std::chrono::duration<double>(Clock::now() - t_rep).count();
    ips.push_back(static_cast<double>(n * o_.batch_size * world) / secs);
    tflops.push_back(rep_flops / secs / 1e12);
    if (ctx_.main_rank())
      std::cerr << (train ? "train" : "eval") << " repetition " << r + 1 << "/" << o_.repeats << ": " << std::fixed
                << std::setprecision(3) << ips.back() << " images/s\n";
  }
  nlohmann::json result = {{"images_per_s", median(ips)},
                           {"s_per_step", median(series.step_s)},
                           {"model_tflops_per_s", median(tflops)},
                           {"images_per_s_runs", ips},
                           {"phase_s_per_step", series.phases()}};
  if (profile) result["op_profile"] = op_profile_json(profile->stop(), static_cast<size_t>(o_.profile), series);
  return result;
}

// The data pipeline alone: decode + augment + collate, as fast as the loader delivers.
nlohmann::json BenchRun::measure_data() {
  datasets::CocoDetection ds(data_, datasets::TransformConfig{}, /*train=*/true, config_.masks);
  datasets::DataLoader loader(ds, loader_options(true));
  std::vector<double> ips;
  for (int64_t r = 0; r < o_.repeats; ++r) {
    loader.start_epoch(r);
    const auto t0 = Clock::now();
    int64_t images = 0;
    while (auto b = loader.next()) images += b->samples.tensors.size(0);
    ips.push_back(static_cast<double>(images) / std::chrono::duration<double>(Clock::now() - t0).count());
    if (ctx_.main_rank())
      std::cerr << "data repetition " << r + 1 << "/" << o_.repeats << ": " << ips.back() << " images/s\n";
  }
  return {{"images_per_s", median(ips)}, {"images_per_s_runs", ips}};
}

nlohmann::json describe_run(const BenchOptions& o, const RunContext& ctx) {
  return {{"config", o.config},
          {"masks", o.masks},
          {"batch_size", o.batch_size},
          {"device", ctx.device().str()},
          {"threads", ctx.threads()},
          {"blas", blas_in_use()},
          {"blas_kernels", util::blas_core_in_use()},
          {"allocator", allocator_in_use()},
          {"num_workers", o.num_workers},
          {"image_size", std::to_string(o.width) + "x" + std::to_string(o.height)},
          {"warmup_steps", o.warmup},
          {"steps", o.steps},
          {"repeats", o.repeats},
          {"world_size", ctx.world_size()},
          {"backend", ctx.group() ? ctx.group()->backend() : "none"},
          {"amp", to_string(o.amp)},
          {"conv_algorithm", ctx.conv_algorithm_in_use()},
          {"libtorch", TORCH_VERSION}};
}

}  // namespace

nlohmann::json run_benchmark(const BenchOptions& o, const Launch& launch) {
  // Launched as a data-parallel job (RANK/WORLD_SIZE): every rank trains its shard, gradients are
  // averaged as in detr_train, and images/s counts the whole job's images.
  RunOptions ro;
  ro.device = o.device;
  ro.num_threads = o.num_threads;
  ro.conv_algorithm = o.conv_algorithm;
  ro.dist_timeout_s = 600;
  ro.cudnn_benchmark = true;
  RunContext ctx(ro, launch);
  check_precision(o.amp, ctx.device());
  if (o.mode != "train" && o.mode != "data" && ctx.group())
    throw std::runtime_error("detr_bench --mode eval runs on one process (launch it without WORLD_SIZE)");
  const fs::path dir = o.data_dir.empty() ? fs::temp_directory_path() / ("detr_bench_" + std::to_string(::getpid()))
                                          : fs::path(o.data_dir);
  BenchRun run(o, ctx, bench_data(o, ctx.world_size(), dir));
  auto result = describe_run(o, ctx);
  if (o.mode == "data") result["data"] = run.measure_data();
  if (o.mode == "train" || o.mode == "both") result["train"] = run.measure(true);
  if (o.mode == "eval" || o.mode == "both") result["eval"] = run.measure(false);
  if (o.mode != "data") {  // model FLOP utilisation against this machine's measured matmul peak
    const auto [peak, what] = peak_tflops(ctx.device(), o.amp);
    result["peak_tflops"] = peak;
    result["peak_measured_with"] = what;
    for (const char* mode : {"train", "eval"})
      if (result.contains(mode)) result[mode]["mfu"] = result[mode]["model_tflops_per_s"].get<double>() / peak;
  }
  result["peak_rss_gb"] = peak_rss_gb();
  result["peak_cuda_gb"] = peak_cuda_gb(ctx.device());
  result["main_rank"] = ctx.main_rank();
  if (o.data_dir.empty()) fs::remove_all(dir);
  return result;
}

std::string format_benchmark(const nlohmann::json& r) {
  std::ostringstream s;
  s << "config " << r["config"].get<std::string>() << (r.value("masks", false) ? " + masks" : "") << ", batch "
    << r["batch_size"];
  if (r.value("world_size", 1) > 1)
    s << " x " << r["world_size"] << " processes (" << r["backend"].get<std::string>() << ")";
  s << ", " << r["image_size"].get<std::string>() << " images, device " << r["device"].get<std::string>() << ", "
    << r["threads"] << " threads, BLAS " << r["blas"].get<std::string>()
    << (r.value("blas_kernels", std::string()).empty() ? "" : " (" + r["blas_kernels"].get<std::string>() + " kernels)")
    << ", allocator " << r.value("allocator", "?") << ", LibTorch " << r["libtorch"].get<std::string>() << "\n";
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
    if (m.contains("op_profile")) s << format_op_profile(m["op_profile"]);
  }
  s << "peak RSS " << std::setprecision(2) << r["peak_rss_gb"].get<double>() << " GB";
  if (r.value("peak_cuda_gb", 0.0) > 0) s << ", peak CUDA memory " << r["peak_cuda_gb"].get<double>() << " GB";
  s << "\n";
  return s.str();
}

}  // namespace detr
