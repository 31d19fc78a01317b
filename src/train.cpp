#include "src/train.h"

#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/cvat_policy.h"
#include "datasets/formats/detect.h"
#include "datasets/loader.h"
#include "models/build.h"
#include "models/detr.h"
#include "models/segmentation.h"
#include "models/set_criterion.h"
#include "src/amp.h"
#include "src/checkpoint.h"
#include "src/engine.h"
#include "src/hub.h"
#include "src/optimizer.h"
#include "src/run_context.h"
#include "src/serialization/state_dict.h"
#include "src/train_outputs.h"

namespace detr {

namespace fs = std::filesystem;

namespace {

// log.txt's per-class figures: [{"class", "id", "AP", "AP50", "AR100"[, "segm_AP", ...]}], -1 where a
// class has no ground truth.
nlohmann::ordered_json per_class_json(const std::vector<datasets::PerClassRow>& rows) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json row{
        {"class", r.name}, {"id", r.id}, {"AP", r.bbox.ap}, {"AP50", r.bbox.ap50}, {"AR100", r.bbox.ar100}};
    if (r.segm) {
      row["segm_AP"] = r.segm->ap;
      row["segm_AP50"] = r.segm->ap50;
      row["segm_AR100"] = r.segm->ar100;
    }
    out.push_back(row);
  }
  return out;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(s);
  std::ostringstream o;
  o << t / 3600 << ":" << std::setw(2) << std::setfill('0') << (t / 60) % 60 << ":" << std::setw(2) << t % 60;
  return o.str();
}

// Progress: a live line on a terminal, plain periodic lines otherwise (workflow pods).
class Progress {
 public:
  Progress(int64_t print_freq, bool enabled)
      : tty_(isatty(STDOUT_FILENO)), enabled_(enabled), print_freq_(print_freq) {}
  void step(int64_t epoch, int64_t epochs, int64_t i, int64_t n, double loss, double images_per_s, double eta) const {
    const bool last = i + 1 == n;
    if (!enabled_ || (!tty_ && (i + 1) % print_freq_ != 0 && !last)) return;
    std::ostringstream o;
    o << "Epoch: [" << epoch << "/" << epochs << "] [" << i + 1 << "/" << n << "] loss: " << std::fixed
      << std::setprecision(4) << loss << " images/s: " << std::setprecision(2) << images_per_s
      << " eta: " << format_duration(eta);
    if (tty_)
      std::cout << "\r" << o.str() << "   " << (last ? "\n" : "") << std::flush;
    else
      std::cout << o.str() << std::endl;
  }

 private:
  bool tty_, enabled_;
  int64_t print_freq_;
};

// ---- data: the export's splits (upstream build_dataset)

struct Data {
  datasets::CocoDataset train, val;
  bool val_is_train = false;
};

// A folder of this run's own (TFRecord images written out for the loaders), removed when it ends.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// --dataset_format, else what the files under --coco_path show (explicit annotation files: COCO).
datasets::formats::DatasetFormat dataset_format(const TrainArgs& a, std::ostream& say) {
  namespace f = datasets::formats;
  if (a.dataset_format) return *a.dataset_format;
  if (!a.train_annotations.empty()) return f::DatasetFormat::coco;
  const auto detected = f::detect_format(a.coco_path);
  say << "dataset format: " << f::format_name(detected.format) << " (" << detected.reason << ")\n";
  return detected.format;
}

Data load_data(const TrainArgs& a, const fs::path& scratch, std::ostream& say) {
  datasets::formats::FormatLoadOptions fo;
  // Decoding every image up front finds corrupt files: always with --check_data, and with
  // --skip_bad_images so that they are skipped before training rather than failing it.
  fo.coco = {a.skip_bad_images, a.check_data || a.skip_bad_images, a.max_image_pixels};
  fo.coco_paths = {a.train_annotations, a.val_annotations, a.image_dir};
  fo.extract_dir = scratch;
  auto splits = datasets::formats::load_format(a.coco_path, dataset_format(a, say), fo);
  for (auto* split : {&splits.train, splits.val ? &*splits.val : nullptr}) {  // the same rules for both
    if (!split) continue;
    const auto report = datasets::apply_policy(*split, {a.crowd, a.boxes_from_masks, a.check_data || a.model.masks});
    if (const auto line = report.summary(); !line.empty())
      say << split->annotation_file.filename().string() << ": " << line << "\n";
  }
  Data d;
  d.train = std::move(splits.train);
  if (splits.val) {
    d.val = std::move(*splits.val);
    return d;
  }
  const double split = a.val_split >= 0 ? a.val_split : d.train.images.size() >= 10 ? 0.1 : 0.0;
  if (split > 0) {
    std::tie(d.train, d.val) = datasets::split_dataset(d.train, split, static_cast<uint64_t>(a.seed));
    say << "validation: " << d.val.images.size() << " of " << d.train.images.size() + d.val.images.size()
        << " images held out (--val_split " << split << ", seed " << a.seed << ")\n";
  } else {
    d.val = d.train;
    d.val_is_train = true;
    say << "validation: on the training images (no validation subset; --val_split 0)\n";
  }
  return d;
}

// num_classes = max category id + 1 (upstream's convention) unless --num_classes says more.
models::ModelConfig model_config(const TrainArgs& a, const Data& data) {
  auto config = a.model;
  const int64_t max_id = std::max(data.train.max_category_id(), data.val.max_category_id());
  config.num_classes = a.num_classes > 0 ? a.num_classes : max_id + 1;
  if (config.num_classes > datasets::kMaxNumClasses)
    throw std::runtime_error("--num_classes " + std::to_string(config.num_classes) + " is above the limit of " +
                             std::to_string(datasets::kMaxNumClasses) + " class-head outputs");
  if (max_id >= config.num_classes)
    throw std::runtime_error("--num_classes " + std::to_string(config.num_classes) + " is too small: category id " +
                             std::to_string(max_id) + " needs at least " + std::to_string(max_id + 1));
  return config;
}

// ---- weights: ImageNet backbone, --pretrained, --resume (one step, upstream's order)

struct InitialWeights {
  std::string source;        // for the start-up line
  LoadedCheckpoint resumed;  // --resume's file (path empty without)
};

// A checkpoint's state dict into the run's model, whichever kind each is: a segmentation file
// (detr.*, bbox_attention.*, mask_head.*) gives a box model its DETR; a box file fills a segmentation
// model's DETR (its mask head keeps its initial weights).
// Fine-tuning (--pretrained) goes through the box model, whose class head is skipped when its shape
// differs (upstream's segmentation and panoptic checkpoints have 91 and 250 classes); a segmentation
// file's mask head follows where the run has one.
serialization::LoadReport load_weights(models::DetrModel& model,
                                       std::map<std::string, torch::Tensor> state,
                                       bool fine_tune) {
  const auto options = fine_tune ? serialization::LoadOptions::fine_tune() : serialization::LoadOptions::strict();
  const bool segm_file = models::is_segmentation_state(state);
  if (segm_file == model.masks() && !(segm_file && fine_tune))
    return serialization::load_state_dict(model.module(), state, options);
  if (!segm_file) return serialization::load_state_dict(*model.detr(), state, options);
  auto [detr_part, head_part] = models::split_segmentation_state(std::move(state));
  auto report = serialization::load_state_dict(*model.detr(), detr_part, options);
  if (model.masks())
    serialization::load_state_dict(model.module(), head_part, serialization::LoadOptions::non_strict());
  return report;
}

InitialWeights init_weights(models::DetrModel& model,
                            const models::ModelConfig& config,
                            const TrainArgs& a,
                            const RunContext& ctx) {
  InitialWeights w{"random weights (--backbone_weights none)", {}};
  hub::DownloadOptions dl;
  dl.progress = isatty(STDERR_FILENO) && ctx.main_rank();
  dl.cache_dir = ctx.launch().weights_cache;
  // ImageNet backbone as upstream, unless the run's weights come from a checkpoint anyway.
  const bool from_checkpoint = !a.resume.empty() || !a.pretrained.empty() || !a.frozen_weights.empty() || a.eval;
  if (a.backbone_weights != "none" && !(a.backbone_weights == "auto" && from_checkpoint)) {
    const std::string path = ctx.local_leader_first([&] {
      return (a.backbone_weights == "auto" ? hub::cached_download(hub::torchvision_resnet_url(config.backbone), dl)
                                           : hub::resolve_weights(a.backbone_weights, false, dl))
          .string();
    });
    ctx.out() << serialization::load_backbone_weights(*model.detr(), path) << "\n";
    w.source = "an ImageNet backbone from " + path;
  }
  if (!a.pretrained.empty()) {
    const auto path = resolve_checkpoint_path(
        ctx.local_leader_first([&] { return hub::resolve_weights(a.pretrained, true, dl).string(); }));
    const auto ck = load_checkpoint(path);
    ctx.out() << load_weights(model, ck.model, /*fine_tune=*/true).summary() << "\n";
    w.source = "weights from " + path.string();
  }
  if (!a.frozen_weights.empty()) {  // upstream: model.detr.load_state_dict(torch.load(frozen_weights)['model'])
    const auto path = resolve_checkpoint_path(a.frozen_weights);
    auto box = load_checkpoint(path).model;
    if (models::is_segmentation_state(box))
      throw std::runtime_error(
          path.string() +
          ": --frozen_weights takes a trained box model (upstream's recipe); this "
          "file is a segmentation model (its keys start with 'detr.'): use --resume or --pretrained");
    load_weights(model, std::move(box), /*fine_tune=*/false);
    w.source = "a frozen box model from " + path.string() + " (only the mask head trains)";
  }
  if (!a.resume.empty()) {
    const auto path = resolve_checkpoint_path(a.resume);
    w.resumed = load_checkpoint(path);
    load_weights(model, w.resumed.model, /*fine_tune=*/false);
    w.source = "resumed from " + path.string();
  }
  return w;
}

// ---- the network: model with its initial weights, on the run's device, and its criterion

struct Network {
  models::DetrModel model;
  models::SetCriterion criterion{nullptr};
  InitialWeights weights;
  int64_t n_parameters = 0;
};

Network build_network(const TrainArgs& a, const models::ModelConfig& config, const RunContext& ctx) {
  auto& say = ctx.out();
  torch::manual_seed(static_cast<uint64_t>(a.seed));
  Network net;
  net.model = models::build(config, /*freeze_detr=*/!a.frozen_weights.empty());
  net.weights = init_weights(net.model, config, a, ctx);
  say << "model: " << config.backbone << ", hidden " << config.hidden_dim << ", " << config.enc_layers << "+"
      << config.dec_layers << " layers, " << config.num_queries << " queries, num_classes " << config.num_classes
      << (config.masks ? ", mask head (DETRsegm)" : "") << "; starting from " << net.weights.source << "\n";
  if (net.weights.source.rfind("random", 0) == 0)
    say << "warning: training starts from random weights; on real images DETR learns slowly from scratch "
           "(drop --backbone_weights none, or give --pretrained R50)\n";
  net.model.set_conv_kernels(ctx.conv_kernels());
  net.model.module().to(ctx.device());
  if (ctx.group())
    dist::broadcast_module(net.model.module(), *ctx.group());  // as DDP: every rank starts from rank 0's weights
  net.criterion = models::build_criterion(config);
  net.criterion->to(ctx.device());
  net.n_parameters = models::count_trainable_parameters(net.model.module());
  say << "number of params: " << net.n_parameters << "\n";
  return net;
}

// ---- where training continues (upstream: --resume restores optimizer, lr_scheduler and epoch)

struct StartPoint {
  int64_t epoch = 0;
  int64_t skip_steps = 0;  // > 0: continue an interrupted epoch after this many steps
};

StartPoint restore_training(const TrainArgs& a,
                            const LoadedCheckpoint& resumed,
                            AdamW& optimizer,
                            StepLR& scheduler,
                            GradScaler& scaler,
                            CheckpointState& state,
                            const RunContext& ctx) {
  StartPoint p{a.start_epoch, 0};
  if (a.resume.empty() || a.eval) return p;
  if (!resumed.has_optimizer || !resumed.state) {
    ctx.out() << "resume: " << resumed.path.string() << " holds no optimizer state (a best.pth or an upstream "
              << "model file): its weights, with a fresh optimizer from epoch " << a.start_epoch << "\n";
    return p;
  }
  const auto& saved = *resumed.state;
  restore_optimizer(resumed, optimizer, scheduler);
  p.epoch = saved.epoch + 1;
  state.best_ap = saved.best_ap;
  if (saved.loss_scale > 0) scaler.load(saved.loss_scale, saved.scaler_growth_tracker);
  if (saved.step_in_epoch <= 0) return p;
  p.skip_steps = saved.step_in_epoch;
  // Another batch size or world size: continue after the same number of images.
  const int64_t per_step = a.batch_size * ctx.world_size();
  if (saved.images_per_step > 0 && saved.images_per_step != per_step) {
    p.skip_steps = saved.images_per_step * saved.step_in_epoch / per_step;
    ctx.out() << "resume: the checkpoint stopped after " << saved.step_in_epoch << " steps of " << saved.images_per_step
              << " images; with " << per_step << " images per step this run continues "
              << "the epoch at step " << p.skip_steps << " (the sample order differs with the world size)\n";
  }
  return p;
}

// ---- loaders (upstream's DataLoader + DistributedSampler)

datasets::TransformConfig transform_config(const TrainArgs& a) {
  auto tc = a.scales.empty() ? datasets::TransformConfig{}
                             : datasets::TransformConfig::with_scales(a.scales, a.max_size, a.val_size);
  tc.max_size = a.max_size;
  tc.val_size = a.val_size;
  return tc;
}

datasets::LoaderOptions loader_options(const TrainArgs& a, const RunContext& ctx, bool train) {
  datasets::LoaderOptions tl;
  tl.batch_size = a.batch_size;
  tl.num_workers = static_cast<int>(a.num_workers);
  tl.seed = static_cast<uint64_t>(a.seed);
  tl.rank = ctx.rank();
  tl.world_size = ctx.world_size();
  tl.pin_memory = ctx.device().is_cuda();  // page-locked batches: the copies to the GPU run asynchronously
  if (!train) {
    tl.shuffle = false;
    tl.drop_last = false;
    tl.pad_to_world = false;  // evaluation shards: every image once
  }
  return tl;
}

// The loaders point into their datasets: built in place, never moved.
struct Loaders {
  Loaders(const Loaders&) = delete;
  Loaders& operator=(const Loaders&) = delete;
  Loaders(const TrainArgs& a, const Data& data, const RunContext& ctx)
      : train_set(data.train, transform_config(a), /*train=*/true, a.model.masks),
        val_set(data.val, transform_config(a), /*train=*/false, a.model.masks),
        train(train_set, loader_options(a, ctx, true)),
        val(val_set, loader_options(a, ctx, false)) {}
  datasets::CocoDetection train_set, val_set;
  datasets::DataLoader train, val;
};

// ---- the epoch loop (upstream main()'s for-loop)

// What the epoch loop works on; run_train builds it.
struct TrainJob {
  const TrainArgs& args;
  RunContext& ctx;
  TrainSetup& setup;  // model, criterion, optimizer, device, gradient sync, precision
  StepLR& scheduler;
  Loaders& loaders;
  const datasets::CocoDataset& val_data;
  TrainOutputs& outputs;
  CheckpointParts parts;     // what checkpoints are made of
  CheckpointState& state;    // epoch, step, best AP, classes
  std::string resumed_from;  // --resume's file, for messages
};

class EpochLoop {
 public:
  explicit EpochLoop(const TrainJob& job)
      : a_(job.args),
        ctx_(job.ctx),
        setup_(job.setup),
        scheduler_(job.scheduler),
        loaders_(job.loaders),
        val_data_(job.val_data),
        outputs_(job.outputs),
        parts_(job.parts),
        state_(job.state),
        resumed_from_(job.resumed_from),
        progress_(job.args.print_freq, job.ctx.main_rank()) {}

  // Returns the exit code: 0 done, 1 stopped (the checkpoint says where).
  int run(StartPoint start, int64_t n_parameters);
  EvalOutput evaluate(int64_t epoch);

  std::vector<std::pair<std::string, double>> last_train;
  int64_t epochs_done = 0;

 private:
  // One epoch's training; false when stopped inside it (after the checkpoint is written).
  bool train_epoch(int64_t epoch, int64_t skip_steps, double& images_per_s);
  void end_epoch(int64_t epoch, double images_per_s, int64_t n_parameters);
  void save(int64_t epoch, int64_t step_in_epoch, bool keep_copy = false);
  double best_metric(const EvalOutput& ev) const;

  const TrainArgs& a_;
  RunContext& ctx_;
  TrainSetup& setup_;
  StepLR& scheduler_;
  Loaders& loaders_;
  const datasets::CocoDataset& val_data_;
  TrainOutputs& outputs_;
  CheckpointParts parts_;
  CheckpointState& state_;
  std::string resumed_from_;
  Progress progress_;
  int64_t global_step_ = 0;
  double epoch_seconds_ = 0;  // the last epoch's training time
};

// best.pth follows box AP, or with --best_metric segm the mask AP.
double EpochLoop::best_metric(const EvalOutput& ev) const {
  return a_.best_metric == datasets::IouType::segm && !ev.mask_detections.empty() ? ev.coco_masks.stats[0]
                                                                                  : ev.coco.stats[0];
}

void EpochLoop::save(int64_t epoch, int64_t step_in_epoch, bool keep_copy) {
  state_.epoch = epoch;
  state_.step_in_epoch = step_in_epoch;
  state_.images_per_step = a_.batch_size * ctx_.world_size();
  const GradScaler* scaler = setup_.amp.scaler;
  state_.loss_scale = scaler && scaler->enabled() ? scaler->scale() : 0;
  state_.scaler_growth_tracker = scaler ? scaler->growth_tracker() : 0;
  outputs_.save_checkpoint(parts_, state_, keep_copy);
}

EvalOutput EpochLoop::evaluate(int64_t epoch) {
  // In a job a rank cannot leave an evaluation alone; the epoch's checkpoint is already written.
  std::function<bool()> interrupt;
  if (!ctx_.group()) interrupt = [this] { return ctx_.stop_requested(); };
  auto ev = detr::evaluate(setup_, loaders_.val, val_data_, interrupt);
  if (ev.mask_detections.empty()) {
    ctx_.out() << datasets::format_summary(ev.coco) << std::flush;
  } else {  // as upstream's CocoEvaluator prints both
    ctx_.out() << "IoU metric: bbox\n"
               << datasets::format_summary(ev.coco) << "IoU metric: segm\n"
               << datasets::format_summary(ev.coco_masks) << std::flush;
  }
  outputs_.write_eval(epoch, ev);
  outputs_.validation_images(ev, val_data_, a_.tb_images, epoch);
  return ev;
}

bool EpochLoop::train_epoch(int64_t epoch, int64_t skip_steps, double& images_per_s) {
  // Per rank, as upstream seeds with seed + rank: each rank draws its own dropout masks.
  torch::manual_seed(static_cast<uint64_t>(a_.seed) * 1000003ULL + static_cast<uint64_t>(epoch) +
                     7919ULL * static_cast<uint64_t>(ctx_.rank()));
  const auto t_epoch = Clock::now();
  int64_t images = 0, steps_run = 0;
  const int world = ctx_.world_size();
  EpochCallbacks cb;
  cb.should_stop = [this] { return ctx_.stopping(); };
  cb.on_step = [&](int64_t i, int64_t n, const StepOutput& s, int64_t batch_images, double secs) {
    images += batch_images * world;
    ++steps_run;
    const double elapsed = seconds_since(t_epoch);
    progress_.step(epoch, a_.epochs, i, n, s.loss, images / std::max(elapsed, 1e-9),
                   elapsed / static_cast<double>(i + 1 - skip_steps) * static_cast<double>(n - i - 1));
    outputs_.step_scalars(s, setup_.optimizer->groups()[0].lr, batch_images * world / std::max(secs, 1e-9),
                          setup_.amp.scaler && setup_.amp.scaler->enabled(), ++global_step_);
  };
  auto logger = train_one_epoch(setup_, loaders_.train, epoch, cb, skip_steps);
  const int64_t done_steps = skip_steps + steps_run;
  images_per_s = images / std::max(seconds_since(t_epoch), 1e-9);
  if (done_steps >= loaders_.train.size()) {
    scheduler_.step();
    last_train = logger.averages();
    return true;
  }
  // Every rank stopped after the same step.
  save(epoch - 1, done_steps);
  if (ctx_.main_rank())
    std::cerr << "detr_train: stopped " << ctx_.stop_reason() << " in epoch " << epoch << " after step " << done_steps
              << (outputs_.enabled()
                      ? "; checkpoint written to " + outputs_.checkpoint_path().string() + " (--resume it to continue)"
                      : std::string(" (no --output_dir: nothing saved)"))
              << "\n";
  outputs_.flush();
  if (ctx_.group()) ctx_.group()->barrier();  // the others wait for rank 0's checkpoint before exiting
  return false;
}

void EpochLoop::end_epoch(int64_t epoch, double images_per_s, int64_t n_parameters) {
  // As upstream: the epoch's checkpoint first (a pod killed during evaluation keeps the epoch).
  save(epoch, 0, (epoch + 1) % a_.lr_drop == 0 || (epoch + 1) % 100 == 0);
  nlohmann::ordered_json line;
  for (const auto& [k, v] : last_train) line["train_" + k] = v;
  const bool do_eval =
      !ctx_.stopping() && ((a_.eval_every > 0 && (epoch + 1) % a_.eval_every == 0) || epoch + 1 == a_.epochs);
  std::optional<EvalOutput> ev;
  if (do_eval) {
    ev = evaluate(epoch);
    for (const auto& [k, v] : ev->stats.averages()) line["test_" + k] = v;
    line["test_coco_eval_bbox"] = ev->coco.stats;
    if (!ev->mask_detections.empty()) line["test_coco_eval_masks"] = ev->coco_masks.stats;  // upstream's key
    if (!ev->per_class.empty()) line["test_per_class"] = per_class_json(ev->per_class);
  }
  line["epoch"] = epoch;
  line["n_parameters"] = n_parameters;
  line["epoch_time_s"] = epoch_seconds_;
  line["train_images_per_s"] = images_per_s;
  const double ap = ev ? best_metric(*ev) : -1;
  if (ctx_.main_rank() && ev && ap > state_.best_ap) {  // other ranks hold no COCO stats
    state_.best_ap = ap;
    save(epoch, 0);  // again, recording the new best AP
    outputs_.save_best(parts_, state_);
  }
  outputs_.log_epoch(line);
  outputs_.epoch_scalars(last_train, images_per_s, ev ? &*ev : nullptr, epoch);
}

int EpochLoop::run(StartPoint start, int64_t n_parameters) {
  const int64_t steps = loaders_.train.size();
  if (start.skip_steps > 0 && start.skip_steps >= steps)
    throw std::runtime_error(resumed_from_ + ": field 'step_in_epoch' says the run stopped after " +
                             std::to_string(start.skip_steps) + " steps of epoch " + std::to_string(start.epoch) +
                             ", but an epoch of this run has " + std::to_string(steps) +
                             " steps (another dataset or --batch_size?)");
  global_step_ = start.epoch * steps + start.skip_steps;
  ctx_.stop_token().arm();  // from here a signal stops after the current step, with a checkpoint
  for (int64_t epoch = start.epoch; epoch < a_.epochs; ++epoch) {
    double images_per_s = 0;
    const auto t_epoch = Clock::now();
    if (!train_epoch(epoch, epoch == start.epoch ? start.skip_steps : 0, images_per_s)) return 1;
    epoch_seconds_ = seconds_since(t_epoch);
    end_epoch(epoch, images_per_s, n_parameters);
    ++epochs_done;
    if (ctx_.stopping()) {  // arrived during the epoch's last step or its evaluation: the epoch is saved
      if (ctx_.main_rank())
        std::cerr << "detr_train: stopped " << ctx_.stop_reason() << " after epoch " << epoch
                  << (outputs_.enabled() ? "; checkpoint written to " + outputs_.checkpoint_path().string()
                                         : std::string())
                  << "\n";
      return 1;
    }
  }
  return 0;
}

void say_done(std::ostream& say,
              const EpochLoop& loop,
              double seconds,
              const TrainOutputs& outputs,
              const CheckpointState& state) {
  say << "Training done: " << loop.epochs_done << " epochs in " << format_duration(seconds);
  for (const auto& [k, v] : loop.last_train)
    if (k == "loss" || k == "loss_ce" || k == "loss_bbox" || k == "loss_giou") say << ", " << k << " " << v;
  say << "\n";
  if (outputs.enabled())
    say << "Outputs in " << outputs.dir().string() << ": checkpoint.pth, classes.csv, log.txt, tensorboard/, eval/"
        << (state.best_ap >= 0 ? ", best.pth" : "") << "\n";
}

}  // namespace

int run_train(const TrainArgs& a, const Launch& launch) {
  const auto t_start = Clock::now();
  RunContext ctx(a.run_options(), launch);
  auto& say = ctx.out();
  const Precision precision = a.amp;
  check_precision(precision, ctx.device());
  if (ctx.group()) say << "job: " << ctx.describe() << "; effective batch " << a.batch_size * ctx.world_size() << "\n";

  const ScratchDir scratch{fs::temp_directory_path() / ("detr_train_" + std::to_string(::getpid()))};
  ctx.stop_token().remove_on_forced_exit(scratch.path);  // a signal while loading ends the run at once
  auto data = load_data(a, scratch.path, say);
  say << datasets::format_summary(data.train, "train") << "\n";
  if (!data.val_is_train) say << datasets::format_summary(data.val, "val") << "\n";
  if (a.check_data) {
    say << "check_data: the dataset is usable\n";
    return 0;
  }
  const auto config = model_config(a, data);

  auto net = build_network(a, config, ctx);
  auto& model = net.model;
  const auto& weights = net.weights;
  const int64_t n_parameters = net.n_parameters;

  AdamW optimizer(model.module(), AdamWOptions{a.lr, a.lr_backbone, a.weight_decay});
  StepLR scheduler(optimizer, a.lr_drop);
  GradScaler scaler(precision == Precision::fp16);
  std::unique_ptr<dist::GradientReducer> reducer;
  if (ctx.group()) reducer = std::make_unique<dist::GradientReducer>(model.module().parameters(), *ctx.group());
  const dist::StepSync sync{ctx.group(), reducer.get()};
  TrainSetup setup{model, net.criterion, &optimizer, ctx.device(), a.clip_max_norm, sync, {precision, &scaler}};
  CheckpointState state;
  state.classes = data.train.categories;
  const auto start = restore_training(a, weights.resumed, optimizer, scheduler, scaler, state, ctx);
  net.weights.resumed.root.reset();  // the resumed file's tensors are in the model and optimizer now
  net.weights.resumed.model.clear();
  auto loaders = std::make_unique<Loaders>(a, data, ctx);

  auto args_json = a.to_json();
  args_json.update(models::to_json(config));  // the num_classes actually used
  args_json["world_size"] = ctx.world_size();
  args_json["distributed"] = ctx.world_size() > 1;
  TrainOutputs outputs(a.output_dir, ctx.main_rank(), {{"args", args_json}, {"model_config", models::to_json(config)}},
                       data.train.categories);
  if (outputs.enabled())  // a second signal during a save: the old files stand, no half-written copy
    for (const char* name : {"checkpoint.pth.tmp", "best.pth.tmp"})
      ctx.stop_token().remove_on_forced_exit(outputs.checkpoint_path().parent_path() / name);
  const CheckpointParts parts{model, &config, &optimizer, &scheduler, &args_json};
  EpochLoop loop({a, ctx, setup, scheduler, *loaders, data.val, outputs, parts, state, weights.resumed.path.string()});
  if (a.eval) {
    auto ev = loop.evaluate(start.epoch);
    nlohmann::ordered_json line;
    for (const auto& [k, v] : ev.stats.averages()) line["test_" + k] = v;
    line["test_coco_eval_bbox"] = ev.coco.stats;
    if (!ev.mask_detections.empty()) line["test_coco_eval_masks"] = ev.coco_masks.stats;
    say << line.dump() << "\n";
    return 0;
  }

  say << "Start training: epochs " << start.epoch << ".." << a.epochs - 1 << ", " << loaders->train.size()
      << " steps of " << a.batch_size << " images" << (ctx.group() ? " per process" : "") << ", " << ctx.describe()
      << (precision == Precision::fp32 ? std::string() : ", mixed precision " + to_string(precision)) << "\n";
  if (const int code = loop.run(start, n_parameters); code != 0) return code;

  const bool onepanel_default = launch.onepanel && a.sys_metrics.empty();
  if (ctx.main_rank())
    TrainOutputs::write_metrics(onepanel_default ? "/tmp/sys-metrics.json" : a.sys_metrics, state.best_ap,
                                loop.last_train);
  say_done(say, loop, seconds_since(t_start), outputs, state);
  return 0;
}

}  // namespace detr
