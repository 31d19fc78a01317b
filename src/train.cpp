#include "src/train.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "models/detr.h"
#include "models/set_criterion.h"
#include "models/winograd_conv.h"
#include "src/amp.h"
#include "src/checkpoint.h"
#include "src/distributed.h"
#include "src/engine.h"
#include "src/hub.h"
#include "src/util/atomic_file.h"
#include "src/util/cpu.h"
#include "src/optimizer.h"
#include "src/serialization/state_dict.h"
#include "src/tensorboard.h"

namespace detr {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) std::_Exit(128 + sig);  // second signal: now
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(s);
  std::ostringstream o;
  o << t / 3600 << ":" << std::setw(2) << std::setfill('0') << (t / 60) % 60 << ":" << std::setw(2)
    << t % 60;
  return o.str();
}

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device d(name);
  if (d.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("--device " + name + ": CUDA is not available in this build or machine (use --device cpu)");
  return d;
}

// One JSON line appended to output_dir/log.txt.
void append_log(const fs::path& path, const nlohmann::ordered_json& line) {
  util::append_line(path, line.dump() + "\n");
}

void write_json_atomic(const fs::path& path, const nlohmann::json& j, bool compact = false) {
  util::write_file_atomically(path, (compact ? j.dump() : j.dump(1)) + "\n");
}

// A copy that a kill can never leave half-written.
void copy_atomic(const fs::path& from, const fs::path& to) { util::copy_file_atomically(from, to); }

// Progress: a live line on a terminal, plain periodic lines otherwise (workflow pods).
class Progress {
 public:
  Progress(int64_t print_freq, bool enabled)
      : tty_(isatty(STDOUT_FILENO)), enabled_(enabled), print_freq_(print_freq) {}
  void step(int64_t epoch, int64_t epochs, int64_t i, int64_t n, const StepOutput& s, double images_per_s,
            double eta) {
    const bool last = i + 1 == n;
    if (!enabled_) return;
    if (!tty_ && (i + 1) % print_freq_ != 0 && !last) return;
    std::ostringstream o;
    o << "Epoch: [" << epoch << "/" << epochs << "] [" << i + 1 << "/" << n << "] loss: " << std::fixed
      << std::setprecision(4) << s.loss << " images/s: " << std::setprecision(2) << images_per_s
      << " eta: " << format_duration(eta);
    if (tty_) {
      std::cout << "\r" << o.str() << "   " << (last ? "\n" : "") << std::flush;
    } else {
      std::cout << o.str() << std::endl;
    }
  }

 private:
  bool tty_, enabled_;
  int64_t print_freq_;
};

struct Data {
  datasets::CocoDataset train, val;
  bool val_is_train = false;
};

Data load_data(const TrainArgs& a, std::ostream& say) {
  auto layout = datasets::discover_coco(a.coco_path, {a.train_annotations, a.val_annotations, a.image_dir});
  // Decoding every image up front finds corrupt files: always with --check_data, and with
  // --skip_bad_images so that they are skipped before training rather than failing it.
  datasets::CocoLoadOptions lo{a.skip_bad_images, a.check_data || a.skip_bad_images, a.max_image_pixels};
  Data d;
  d.train = datasets::load_coco(layout.train, lo);
  if (layout.val) {
    d.val = datasets::load_coco(*layout.val, lo);
  } else {
    double split = a.val_split;
    if (split < 0) split = d.train.images.size() >= 10 ? 0.1 : 0.0;
    if (split > 0) {
      auto [tr, va] = datasets::split_dataset(d.train, split, static_cast<uint64_t>(a.seed));
      d.train = std::move(tr);
      d.val = std::move(va);
      say << "validation: " << d.val.images.size() << " of " << d.train.images.size() + d.val.images.size()
                << " images held out (--val_split " << split << ", seed " << a.seed << ")\n";
    } else {
      d.val = d.train;
      d.val_is_train = true;
      say << "validation: on the training images (no validation subset; --val_split 0)\n";
    }
  }
  return d;
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }

int run_train(const TrainArgs& a) {
  const auto t_start = Clock::now();
  // ---- the job: one process, or one rank of a data-parallel job started by a launcher
  const auto env = dist::env_from_environment(a.dist_url);
  const bool distributed = env && env->world_size > 1;
  auto device = resolve_device(a.device);
  if (distributed && device.is_cuda() && !device.has_index())  // one GPU per local rank (modulo the visible ones)
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(
                                             env->local_rank % std::max<int64_t>(1, torch::cuda::device_count())));
  const Precision precision = parse_precision(a.amp);
  check_precision(precision, device);
  models::set_conv_algorithm(models::parse_conv_algorithm(a.conv_algorithm));
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);  // input sizes repeat: autotune once each
  // Processes sharing a machine share its cores: a launcher's OMP_NUM_THREADS, else an equal share.
  int threads = a.num_threads > 0 ? static_cast<int>(a.num_threads) : util::usable_cpus();
  if (distributed && a.num_threads <= 0) {
    const char* omp = std::getenv("OMP_NUM_THREADS");
    threads = omp && std::atoi(omp) > 0 ? std::atoi(omp) : std::max(1, threads / env->local_world_size);
  }
  torch::set_num_threads(threads);
  std::unique_ptr<dist::ProcessGroup> group;
  if (distributed) {
    dist::InitOptions io;
    io.backend = a.dist_backend;
    io.timeout = std::chrono::milliseconds(static_cast<int64_t>(a.dist_timeout * 1000));
    io.device = device;
    group = dist::ProcessGroup::init(*env, io);
  }
  const int world_size = group ? group->world_size() : 1;
  const bool main_rank = !group || group->is_main();
  std::ostream null_stream(nullptr);  // upstream setup_for_distributed: only rank 0 prints
  std::ostream& say = main_rank ? std::cout : null_stream;
  if (group)
    say << "distributed: " << world_size << " processes (" << env->source << "), backend " << group->backend()
        << ", rendezvous " << env->master_addr << ":" << env->master_port << ", timeout " << a.dist_timeout
        << " s; effective batch " << a.batch_size * world_size << "\n";
  // Downloads: the first process of each machine fetches, the others then find the file cached.
  auto local_leader_first = [&](const std::function<std::filesystem::path()>& fetch) {
    if (!group) return fetch();
    if (env->local_rank == 0) {
      auto path = fetch();
      group->barrier();
      return path;
    }
    group->barrier();
    return fetch();
  };

  // ---- data
  auto data = load_data(a, say);
  say << datasets::format_summary(data.train, "train") << "\n";
  if (!data.val_is_train) say << datasets::format_summary(data.val, "val") << "\n";
  if (a.check_data) {
    say << "check_data: the dataset is usable\n";
    return 0;
  }
  auto config = a.model;
  const int64_t max_id = std::max(data.train.max_category_id(), data.val.max_category_id());
  config.num_classes = a.num_classes > 0 ? a.num_classes : max_id + 1;
  if (config.num_classes > datasets::kMaxNumClasses)
    throw std::runtime_error("--num_classes " + std::to_string(config.num_classes) + " is above the limit of " +
                             std::to_string(datasets::kMaxNumClasses) + " class-head outputs");
  if (max_id >= config.num_classes)
    throw std::runtime_error("--num_classes " + std::to_string(config.num_classes) + " is too small: category id " +
                             std::to_string(max_id) + " needs at least " + std::to_string(max_id + 1));

  // ---- model
  torch::manual_seed(static_cast<uint64_t>(a.seed));
  auto model = models::build_model(config);
  std::string init = "random weights (--backbone_weights none)";
  hub::DownloadOptions dl;
  dl.progress = isatty(STDERR_FILENO) && main_rank;
  // ImageNet backbone as upstream, unless the run's weights come from a checkpoint anyway.
  const bool from_checkpoint = !a.resume.empty() || !a.pretrained.empty() || a.eval;
  if (a.backbone_weights != "none" && !(a.backbone_weights == "auto" && from_checkpoint)) {
    const auto path = local_leader_first([&] {
      return a.backbone_weights == "auto" ? hub::cached_download(hub::torchvision_resnet_url(config.backbone), dl)
                                          : hub::resolve_weights(a.backbone_weights, false, dl);
    });
    auto report = serialization::load_backbone_weights(*model, path);
    init = "an ImageNet backbone from " + path.string();
    say << report << "\n";
  }
  if (!a.pretrained.empty()) {
    const auto path =
        resolve_checkpoint_path(local_leader_first([&] { return hub::resolve_weights(a.pretrained, true, dl); }));
    auto ck = load_checkpoint(path);
    auto report = serialization::load_state_dict(*model, ck.model, serialization::LoadOptions::fine_tune());
    init = "weights from " + path.string();
    say << report.summary() << "\n";
  }
  LoadedCheckpoint resumed;
  if (!a.resume.empty()) {
    const auto path = resolve_checkpoint_path(a.resume);
    resumed = load_checkpoint(path);
    serialization::load_state_dict(*model, resumed.model, serialization::LoadOptions::strict());
    init = "resumed from " + path.string();
  }
  say << "model: " << config.backbone << ", hidden " << config.hidden_dim << ", " << config.enc_layers << "+"
            << config.dec_layers << " layers, " << config.num_queries << " queries, num_classes "
            << config.num_classes << "; starting from " << init << "\n";
  if (init.rfind("random", 0) == 0 && a.resume.empty())
    say << "warning: training starts from random weights; on real images DETR learns slowly "
                 "from scratch (drop --backbone_weights none, or give --pretrained R50)\n";
  model->to(device);
  if (group) dist::broadcast_module(*model, *group);  // as DDP: every rank starts from rank 0's weights
  auto criterion = models::build_criterion(config);
  criterion->to(device);
  const int64_t n_parameters = models::count_trainable_parameters(*model);
  say << "number of params: " << n_parameters << "\n";

  AdamWOptions oo;
  oo.lr = a.lr;
  oo.lr_backbone = config.lr_backbone;
  oo.weight_decay = a.weight_decay;
  AdamW optimizer(*model, oo);
  StepLR scheduler(optimizer, a.lr_drop);
  GradScaler scaler(precision == Precision::fp16);
  const AmpState amp{precision, &scaler};
  std::unique_ptr<dist::GradientReducer> reducer;
  dist::StepSync sync;
  if (group) {
    reducer = std::make_unique<dist::GradientReducer>(model->parameters(), *group);
    sync = {group.get(), reducer.get()};
  }

  CheckpointState state;
  state.classes = data.train.categories;
  int64_t start_epoch = a.start_epoch, skip_steps = 0;
  if (!a.resume.empty() && !a.eval && resumed.has_optimizer && resumed.state) {
    restore_optimizer(resumed.path, optimizer, scheduler);
    if (resumed.state->step_in_epoch > 0) {
      start_epoch = resumed.state->epoch + 1;
      skip_steps = resumed.state->step_in_epoch;
      // Another batch size or world size: continue after the same number of images.
      const int64_t per_step = a.batch_size * world_size, saved = resumed.state->images_per_step;
      if (saved > 0 && saved != per_step) {
        skip_steps = saved * resumed.state->step_in_epoch / per_step;
        say << "resume: the checkpoint stopped after " << resumed.state->step_in_epoch << " steps of " << saved
            << " images; with " << per_step << " images per step this run continues the epoch at step "
            << skip_steps << " (the sample order differs with the world size)\n";
      }
    } else {
      start_epoch = resumed.state->epoch + 1;
    }
    state.best_ap = resumed.state->best_ap;
    if (resumed.state->loss_scale > 0) scaler.load(resumed.state->loss_scale, resumed.state->scaler_growth_tracker);
  }

  // ---- loaders
  datasets::TransformConfig tc = a.scales.empty() ? datasets::TransformConfig{}
                                                  : datasets::TransformConfig::with_scales(a.scales, a.max_size, a.val_size);
  tc.max_size = a.max_size;
  tc.val_size = a.val_size;
  datasets::CocoDetection train_set(data.train, tc, /*train=*/true);
  datasets::CocoDetection val_set(data.val, tc, /*train=*/false);
  datasets::LoaderOptions tl;
  tl.batch_size = a.batch_size;
  tl.num_workers = static_cast<int>(a.num_workers);
  tl.seed = static_cast<uint64_t>(a.seed);
  tl.rank = group ? group->rank() : 0;
  tl.world_size = world_size;
  tl.pin_memory = device.is_cuda();  // page-locked batches: the copies to the GPU run asynchronously
  auto vl = tl;
  vl.shuffle = false;
  vl.drop_last = false;
  vl.pad_to_world = false;  // evaluation shards: every image once
  datasets::DataLoader train_loader(train_set, tl);
  datasets::DataLoader val_loader(val_set, vl);

  // ---- outputs
  auto args_json = a.to_json();
  args_json.update(models::to_json(config));  // the num_classes actually used
  args_json["world_size"] = world_size;
  args_json["distributed"] = world_size > 1;
  const bool save = !a.output_dir.empty() && main_rank;
  const fs::path out(a.output_dir);
  std::unique_ptr<TensorBoardWriter> tb;
  if (save) {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec || !fs::is_directory(out)) throw std::runtime_error(out.string() + ": cannot create --output_dir");
    datasets::write_classes_csv(data.train.categories, out / "classes.csv");
    write_json_atomic(out / "config.json", {{"args", args_json}, {"model_config", models::to_json(config)}});
    tb = std::make_unique<TensorBoardWriter>(out / "tensorboard");
  }
  auto save_ckpt = [&](const fs::path& path, int64_t epoch, int64_t step_in_epoch) {
    state.epoch = epoch;
    state.step_in_epoch = step_in_epoch;
    state.images_per_step = a.batch_size * world_size;
    state.loss_scale = scaler.enabled() ? scaler.scale() : 0;
    state.scaler_growth_tracker = scaler.growth_tracker();
    save_checkpoint(path, model, config, optimizer, scheduler, state, args_json);
  };
  auto run_eval = [&](int64_t epoch) {
    // In a job a rank cannot leave an evaluation alone; the epoch's checkpoint is already written.
    std::function<bool()> interrupt;
    if (!group) interrupt = [] { return stop_requested(); };
    auto ev = evaluate(model, criterion, val_loader, data.val, device, interrupt, group.get());
    say << datasets::format_summary(ev.coco) << std::flush;
    if (save) {
      fs::create_directories(out / "eval");
      nlohmann::json dets = nlohmann::json::array();
      for (const auto& d : ev.detections)
        dets.push_back({{"image_id", d.image_id}, {"category_id", d.category_id},
                        {"bbox", {d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]}}, {"score", d.score}});
      // As upstream's eval/: the latest results, and a copy every 50 epochs (results are large).
      write_json_atomic(out / "eval" / "results_latest.json", dets, /*compact=*/true);
      if (epoch % 50 == 0) {
        std::ostringstream name;
        name << "results_" << std::setw(4) << std::setfill('0') << epoch << ".json";
        copy_atomic(out / "eval" / "results_latest.json", out / "eval" / name.str());
      }
      write_json_atomic(out / "eval" / "latest.json",
                        {{"epoch", epoch}, {"coco_eval_bbox", ev.coco.stats}, {"results", "results_latest.json"}});
    }
    return ev;
  };

  if (a.eval) {
    auto ev = run_eval(start_epoch);
    nlohmann::ordered_json line;
    for (const auto& [k, v] : ev.stats.averages()) line["test_" + k] = v;
    line["test_coco_eval_bbox"] = ev.coco.stats;
    say << line.dump() << "\n";
    return 0;
  }

  // ---- training
  install_stop_handlers();
  Progress progress(a.print_freq, main_rank);
  const auto weights = criterion->weight_dict;
  if (skip_steps >= train_loader.size() && skip_steps > 0)
    throw std::runtime_error(resumed.path.string() + ": field 'step_in_epoch' says the run stopped after " +
                             std::to_string(skip_steps) + " steps of epoch " + std::to_string(start_epoch) +
                             ", but an epoch of this run has " + std::to_string(train_loader.size()) +
                             " steps (another dataset or --batch_size?)");
  int64_t global_step = start_epoch * train_loader.size() + skip_steps;
  std::vector<std::pair<std::string, double>> last_train;
  int64_t epochs_done = 0;
  // Whether any rank was asked to stop (a collective in a job: every rank calls it at the same points).
  auto stopping = [&] {
    if (!group) return stop_requested();
    auto votes = torch::full({1}, stop_requested() ? 1.0f : 0.0f);
    group->all_reduce_sum(votes);
    return votes.item<float>() > 0;
  };
  auto stop_reason = [] {
    return stop_signal() ? "by signal " + std::to_string(stop_signal()) : std::string("by a signal to another rank");
  };
  say << "Start training: epochs " << start_epoch << ".." << a.epochs - 1 << ", " << train_loader.size()
            << " steps of " << a.batch_size << " images" << (group ? " per process" : "") << ", device " << device << ", " << threads << " threads"
      << (precision == Precision::fp32 ? std::string() : ", mixed precision " + to_string(precision)) << "\n";
  for (int64_t epoch = start_epoch; epoch < a.epochs; ++epoch) {
    // Per rank, as upstream seeds with seed + rank: each rank draws its own dropout masks.
    torch::manual_seed(static_cast<uint64_t>(a.seed) * 1000003ULL + static_cast<uint64_t>(epoch) +
                       (group ? 7919ULL * static_cast<uint64_t>(group->rank()) : 0ULL));
    const auto t_epoch = Clock::now();
    int64_t images = 0, steps_run = 0;
    EpochCallbacks cb;
    cb.should_stop = [] { return stop_requested(); };
    cb.on_step = [&](int64_t i, int64_t n, const StepOutput& s, int64_t batch_images, double secs) {
      images += batch_images * world_size;
      ++steps_run;
      ++global_step;
      const double elapsed = seconds_since(t_epoch);
      const double ips = images / std::max(elapsed, 1e-9);
      const double eta = elapsed / (i + 1 - skip_steps) * (n - i - 1);
      progress.step(epoch, a.epochs, i, n, s, ips, eta);
      if (tb) {
        tb->add_scalar("train/loss", s.loss, global_step);
        for (const auto& [k, v] : s.terms) tb->add_scalar("train/" + k, v, global_step);
        tb->add_scalar("train/lr", optimizer.groups()[0].lr, global_step);
        tb->add_scalar("train/images_per_s", batch_images * world_size / std::max(secs, 1e-9), global_step);
        tb->add_scalar("train/grad_norm", s.grad_norm, global_step);
        if (scaler.enabled()) tb->add_scalar("train/loss_scale", s.loss_scale, global_step);
      }
    };
    auto logger = train_one_epoch(model, criterion, optimizer, train_loader, epoch, device, a.clip_max_norm, cb,
                                  skip_steps, group ? &sync : nullptr, &amp);
    const int64_t done_steps = skip_steps + steps_run;
    skip_steps = 0;
    const bool epoch_complete = done_steps >= train_loader.size();
    if (!epoch_complete) {  // every rank stopped after the same step
      if (save) {
        save_ckpt(out / "checkpoint.pth", epoch - 1, done_steps);
        std::cerr << "detr_train: stopped " << stop_reason() << " in epoch " << epoch << " after step "
                  << done_steps << "; checkpoint written to " << (out / "checkpoint.pth").string()
                  << " (--resume it to continue)\n";
      } else if (main_rank) {
        std::cerr << "detr_train: stopped " << stop_reason() << " (no --output_dir: nothing saved)\n";
      }
      if (tb) tb->flush();
      if (group) group->barrier();  // the others wait for rank 0's checkpoint before exiting
      return 1;
    }
    scheduler.step();
    last_train = logger.averages();
    const double epoch_secs = seconds_since(t_epoch);

    // As upstream: the epoch's checkpoint first (a pod killed during evaluation keeps the epoch).
    if (save) {
      save_ckpt(out / "checkpoint.pth", epoch, 0);
      if ((epoch + 1) % a.lr_drop == 0 || (epoch + 1) % 100 == 0) {
        std::ostringstream name;
        name << "checkpoint" << std::setw(4) << std::setfill('0') << epoch << ".pth";
        copy_atomic(out / "checkpoint.pth", out / name.str());
      }
    }
    nlohmann::ordered_json line;
    for (const auto& [k, v] : last_train) line["train_" + k] = v;
    const bool do_eval = !stopping() &&
                         ((a.eval_every > 0 && (epoch + 1) % a.eval_every == 0) || epoch + 1 == a.epochs);
    std::optional<EvalOutput> ev;
    if (do_eval) {
      ev = run_eval(epoch);
      for (const auto& [k, v] : ev->stats.averages()) line["test_" + k] = v;
      line["test_coco_eval_bbox"] = ev->coco.stats;
    }
    line["epoch"] = epoch;
    line["n_parameters"] = n_parameters;
    line["epoch_time_s"] = epoch_secs;
    line["train_images_per_s"] = images / std::max(epoch_secs, 1e-9);
    if (save) {
      if (ev && ev->coco.stats[0] > state.best_ap) {
        state.best_ap = ev->coco.stats[0];
        save_ckpt(out / "checkpoint.pth", epoch, 0);  // again, recording the new best AP
        copy_atomic(out / "checkpoint.pth", out / "best.pth");
      }
      append_log(out / "log.txt", line);
    }
    if (tb) {
      for (const auto& [k, v] : last_train) tb->add_scalar("epoch/train_" + k, v, epoch);
      tb->add_scalar("epoch/images_per_s", images / std::max(epoch_secs, 1e-9), epoch);
      if (ev) {
        static const char* names[] = {"AP", "AP50", "AP75", "APs", "APm", "APl"};
        for (int i = 0; i < 6; ++i) tb->add_scalar(std::string("eval/") + names[i], ev->coco.stats[i], epoch);
        tb->add_scalar("eval/loss", ev->stats.global_avg("loss"), epoch);
      }
      tb->flush();
    }
    ++epochs_done;
    if (stopping()) {  // arrived during the epoch's last step or its evaluation: the epoch is saved
      if (main_rank)
        std::cerr << "detr_train: stopped " << stop_reason() << " after epoch " << epoch
                  << (save ? "; checkpoint written to " + (out / "checkpoint.pth").string() : std::string()) << "\n";
      return 1;
    }
  }

  // ---- Onepanel task metrics: [{"name", "value", "format"}]
  std::string metrics_path = main_rank ? a.sys_metrics : std::string();
  if (main_rank && metrics_path.empty() && std::getenv("ONEPANEL_RESOURCE_UID")) metrics_path = "/tmp/sys-metrics.json";
  if (!metrics_path.empty()) {
    nlohmann::json metrics = nlohmann::json::array();
    if (state.best_ap >= 0) metrics.push_back({{"name", "best AP"}, {"value", state.best_ap}, {"format", ""}});
    for (const auto& [k, v] : last_train)
      if (k == "loss" || k == "class_error")
        metrics.push_back({{"name", "train " + k}, {"value", v}, {"format", k == "class_error" ? "%" : ""}});
    write_json_atomic(metrics_path, metrics);
  }

  // ---- summary
  say << "Training done: " << epochs_done << " epochs in " << format_duration(seconds_since(t_start));
  for (const auto& [k, v] : last_train)
    if (k == "loss" || k == "loss_ce" || k == "loss_bbox" || k == "loss_giou") say << ", " << k << " " << v;
  say << "\n";
  if (save)
    say << "Outputs in " << out.string() << ": checkpoint.pth, classes.csv, log.txt, tensorboard/, eval/"
              << (state.best_ap >= 0 ? ", best.pth" : "") << "\n";
  return 0;
}

}  // namespace detr
