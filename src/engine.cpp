#include "src/engine.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "datasets/coco_mask.h"
#include "models/post_process.h"
#include "util/box_ops.h"

namespace detr {

namespace {

std::vector<util::Target> targets_to(const std::vector<util::Target>& targets, const torch::Device& device) {
  std::vector<util::Target> out;
  for (const auto& t : targets) out.push_back(t.to(device, /*non_blocking=*/true));
  return out;
}

// Losses (then `extra`) to host doubles in one transfer; averaged over the ranks of `group` first
// (upstream reduce_dict).
std::vector<double> to_host(const models::LossDict& losses,
                            const std::vector<torch::Tensor>& extra = {},
                            dist::ProcessGroup* group = nullptr) {
  std::vector<torch::Tensor> values;
  for (const auto& item : losses) values.push_back(item.value().detach().to(torch::kFloat).reshape({}));
  for (const auto& t : extra) values.push_back(t.detach().to(torch::kFloat).reshape({}));
  auto stacked = torch::stack(values);
  if (group && group->world_size() > 1) {
    group->all_reduce_sum(stacked);
    stacked.div_(group->world_size());
  }
  auto host = stacked.to(torch::kCPU, torch::kDouble);
  return {host.data_ptr<double>(), host.data_ptr<double>() + host.numel()};
}

std::vector<std::pair<std::string, double>> named(const models::LossDict& losses, const std::vector<double>& v) {
  std::vector<std::pair<std::string, double>> out;
  size_t k = 0;
  for (const auto& item : losses) out.emplace_back(item.key(), v[k++]);
  return out;
}

// upstream: num_boxes = all_reduce(Σ boxes) / world_size, at least 1.
double global_num_boxes(const std::vector<util::Target>& targets,
                        dist::ProcessGroup& group,
                        const torch::Device& device) {
  int64_t n = 0;
  for (const auto& t : targets) n += t.labels.size(0);
  auto count = torch::full({1}, static_cast<double>(n), torch::TensorOptions(torch::kFloat).device(device));
  group.all_reduce_sum(count);
  return std::max(count.item<double>() / group.world_size(), 1.0);
}

// upstream: "Loss is {}, stopping training" — with every term, and what to try.
void check_finite(const StepOutput& out) {
  if (std::isfinite(out.loss)) return;
  std::ostringstream msg;
  msg << "Loss is " << out.loss << ", stopping training. Loss terms:";
  for (const auto& [k, v] : out.terms) msg << " " << k << "=" << v;
  msg << " (lower --lr or --clip_max_norm, or check the data)";
  throw std::runtime_error(msg.str());
}

// Phase clock for StepTimings: synchronises the device so that GPU work lands in its phase.
class PhaseClock {
 public:
  PhaseClock(StepTimings* t, const torch::Device& d) : t_(t), device_(d) {
    if (t_) last_ = now();
  }
  void mark(double StepTimings::*phase) {
    if (!t_) return;
    const auto n = now();
    t_->*phase += std::chrono::duration<double>(n - last_).count();
    last_ = n;
  }

 private:
  std::chrono::steady_clock::time_point now() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index() < 0 ? 0 : device_.index());
    return std::chrono::steady_clock::now();
  }
  StepTimings* t_;
  torch::Device device_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

StepOutput train_step(TrainSetup& t, const datasets::Batch& batch, StepTimings* timings) {
  PhaseClock clock(timings, t.device);
  dist::ProcessGroup* group = t.group();
  auto samples = batch.samples.to(t.device, /*non_blocking=*/true);
  auto targets = targets_to(batch.targets, t.device);
  clock.mark(&StepTimings::h2d);
  GradScaler* scaler = t.amp.scaler && t.amp.scaler->enabled() ? t.amp.scaler : nullptr;
  models::DetrOutput outputs;
  {
    AutocastGuard autocast(t.device, t.amp.precision);
    outputs = t.model.forward(samples);
  }
  if (t.amp.precision != Precision::fp32) outputs = to_float32(outputs);  // matcher and losses in float32
  clock.mark(&StepTimings::forward);
  c10::optional<double> num_boxes;
  if (group) num_boxes = global_num_boxes(batch.targets, *group, t.device);
  auto result = t.criterion->forward(outputs, targets, num_boxes);
  auto total = t.criterion->weighted_total(result.losses);
  clock.mark(&StepTimings::loss);
  if (timings) {
    timings->matcher += result.matcher_seconds;
    timings->loss -= result.matcher_seconds;
  }

  StepOutput out;
  const auto host = to_host(result.losses, {total}, group);
  out.terms = named(result.losses, host);
  out.loss = host.back();
  check_finite(out);
  AdamW& optimizer = *t.optimizer;
  optimizer.zero_grad();
  (scaler ? scaler->scale_loss(total) : total).backward();
  clock.mark(&StepTimings::backward);
  if (group && t.sync.reducer) t.sync.reducer->average();
  clock.mark(&StepTimings::grad_sync);
  // fp16: true gradients before clipping; an overflow skips the step (the same on every rank, whose
  // gradients are equal after averaging).
  out.loss_scale = scaler ? scaler->scale() : 1.0;
  out.skipped = scaler && scaler->unscale(optimizer.all_params());
  out.grad_norm = clip_grad_norm(optimizer.all_params(), t.max_norm);
  if (!out.skipped) optimizer.step();
  if (scaler) scaler->update(out.skipped);
  // Gradients are not needed until the next backward: freed now, they do not add to the next
  // forward's activations (the peak of a step).
  optimizer.release_grads();
  clock.mark(&StepTimings::optimizer);
  return out;
}

void log_step(MetricLogger& logger,
              const StepOutput& step,
              const std::map<std::string, double>& weight_dict,
              double lr) {
  double class_error = NAN;
  for (const auto& [k, v] : step.terms)
    if (k == "class_error") class_error = v;
  logger.update("lr", lr);
  logger.update("class_error", class_error);
  logger.update("loss", step.loss);
  for (const auto& [k, v] : step.terms) {
    auto w = weight_dict.find(k);
    if (w != weight_dict.end()) logger.update(k, v * w->second);
  }
  for (const auto& [k, v] : step.terms) logger.update(k + "_unscaled", v);
}

namespace {
// A CUDA out-of-memory error, said with the batch that caused it and what to change.
[[noreturn]] void out_of_memory(const c10::Error& e, const datasets::Batch& batch, const torch::Device& device) {
  const std::string what = e.what_without_backtrace();
  if (what.find("out of memory") == std::string::npos) throw;  // called from the catch: rethrows as it is
  const auto& t = batch.samples.tensors;
  throw std::runtime_error("out of memory on " + device.str() + " at --batch_size " + std::to_string(t.size(0)) +
                           " with images padded to " + std::to_string(t.size(2)) + "x" + std::to_string(t.size(3)) +
                           ": lower --batch_size, or use smaller images (--scales 480,512,544 --max_size 800), "
                           "or a smaller --backbone / --hidden_dim");
}
}  // namespace

MetricLogger train_one_epoch(
    TrainSetup& t, datasets::DataLoader& loader, int64_t epoch, const EpochCallbacks& cb, int64_t first_step) {
  t.model.module().train();
  t.criterion->train();
  MetricLogger logger;
  loader.start_epoch(epoch, first_step);
  const int64_t n = loader.size();
  for (int64_t i = first_step; i < n; ++i) {
    if (cb.should_stop && cb.should_stop()) break;
    const auto t0 = std::chrono::steady_clock::now();
    auto batch = loader.next();
    if (!batch) break;
    StepOutput step;
    try {
      step = train_step(t, *batch);
    } catch (const c10::Error& e) {
      out_of_memory(e, *batch, t.device);
    }
    log_step(logger, step, t.criterion->weight_dict, t.optimizer->groups()[0].lr);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (cb.on_step) cb.on_step(i, n, step, batch->samples.tensors.size(0), secs);
  }
  return logger;
}

namespace {
// Every rank's mask results, in rank order, as JSON lines of compressed RLE. Called on every rank
// (a rank whose shard is empty sends none).
void gather_mask_results(EvalOutput& out, dist::ProcessGroup& group) {
  nlohmann::json mine = nlohmann::json::array();
  for (const auto& d : out.mask_detections)
    mine.push_back({d.image_id, d.category_id, d.score, d.segmentation->height, d.segmentation->width,
                    datasets::rle_to_string(*d.segmentation)});
  const auto all = group.all_gather_bytes(mine.dump());
  out.mask_detections.clear();
  for (const auto& bytes : all)
    for (const auto& r : nlohmann::json::parse(bytes)) {
      const int64_t h = r[3], w = r[4];
      out.mask_detections.push_back(datasets::make_segm_result(
          r[0], r[1], datasets::rle_from_string(r[5].get<std::string>(), h, w), r[2].get<double>()));
    }
}

// Every rank's loss meters and detections, merged in rank order on every rank (upstream: metric
// synchronize_between_processes and CocoEvaluator's all_gather). Detections travel as 7 doubles each.
void gather_evaluation(EvalOutput& out, dist::ProcessGroup& group) {
  gather_mask_results(out, group);
  std::vector<double> packed;
  packed.reserve(out.detections.size() * 7);
  for (const auto& d : out.detections) {
    packed.insert(packed.end(), {static_cast<double>(d.image_id), static_cast<double>(d.category_id), d.bbox[0],
                                 d.bbox[1], d.bbox[2], d.bbox[3], d.score});
  }
  const auto dets =
      group.all_gather_bytes(std::string(reinterpret_cast<const char*>(packed.data()), packed.size() * sizeof(double)));
  const auto meters = group.all_gather_bytes(out.stats.state().dump());
  out.stats = MetricLogger();
  out.detections.clear();
  for (int r = 0; r < group.world_size(); ++r) {
    out.stats.merge(nlohmann::json::parse(meters[static_cast<size_t>(r)]));
    const auto& bytes = dets[static_cast<size_t>(r)];
    std::vector<double> v(bytes.size() / sizeof(double));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
    for (size_t k = 0; k + 7 <= v.size(); k += 7)
      out.detections.push_back({static_cast<int64_t>(v[k]),
                                static_cast<int64_t>(v[k + 1]),
                                {v[k + 2], v[k + 3], v[k + 4], v[k + 5]},
                                v[k + 6]});
  }
}

// PostProcess's detections of one image as COCO results: xyxy -> xywh, in float64 as pycocotools reads them.
void append_results(const models::Detections& d, int64_t image_id, std::vector<datasets::CocoResult>& out) {
  auto boxes = util::box_xyxy_to_cxcywh(d.boxes).to(torch::kCPU, torch::kDouble);  // [Q, 4]
  auto xywh = torch::cat({boxes.slice(1, 0, 2) - boxes.slice(1, 2) / 2, boxes.slice(1, 2)}, 1).contiguous();
  auto scores = d.scores.to(torch::kCPU, torch::kDouble).contiguous();
  auto labels = d.labels.to(torch::kCPU, torch::kLong).contiguous();
  const double* bx = xywh.data_ptr<double>();
  for (int64_t q = 0; q < scores.size(0); ++q)
    out.push_back({image_id,
                   labels.data_ptr<int64_t>()[q],
                   {bx[4 * q], bx[4 * q + 1], bx[4 * q + 2], bx[4 * q + 3]},
                   scores.data_ptr<double>()[q]});
}
// PostProcessSegm's masks (each [H, W] at the original size, one at a time) as compressed RLE, as
// upstream's prepare_for_coco_segmentation encodes them; bbox and area come from the mask (COCO.loadRes).
void append_mask_results(const models::Detections& d, int64_t image_id, std::vector<datasets::CocoResult>& out) {
  auto scores = d.scores.to(torch::kCPU, torch::kDouble).contiguous();
  auto labels = d.labels.to(torch::kCPU, torch::kLong).contiguous();
  const auto [h, w] = d.orig_size;
  for (int64_t q = 0; q < d.fed_masks.size(0); ++q) {
    const auto mask = d.mask(q).contiguous();
    auto rle = datasets::encode(mask.data_ptr<uint8_t>(), h, w, datasets::MaskLayout::row_major);
    out.push_back(datasets::make_segm_result(image_id, labels.data_ptr<int64_t>()[q], std::move(rle),
                                             scores.data_ptr<double>()[q]));
  }
}
}  // namespace

models::DetrOutput evaluate_batch(TrainSetup& t, const datasets::Batch& batch, EvalOutput& out, StepTimings* timings) {
  auto samples = batch.samples.to(t.device, true);
  auto targets = targets_to(batch.targets, t.device);
  auto outputs = t.model.forward(samples);
  auto result = t.criterion->forward(outputs, targets);
  if (timings) timings->matcher += result.matcher_seconds;
  StepOutput step;
  step.terms = named(result.losses, to_host(result.losses));
  step.loss = t.criterion->weighted_total(result.losses).item<double>();
  log_step(out.stats, step, t.criterion->weight_dict, NAN);
  std::vector<torch::Tensor> sizes, fed_sizes;
  for (const auto& target : batch.targets) {
    sizes.push_back(target.orig_size);
    fed_sizes.push_back(target.size);
  }
  const auto orig_sizes = torch::stack(sizes).to(t.device);
  auto dets = models::post_process(outputs, orig_sizes);
  if (outputs.pred_masks.defined())
    models::post_process_segm(dets, outputs, orig_sizes, torch::stack(fed_sizes).to(t.device));
  for (size_t b = 0; b < dets.size(); ++b) {
    const int64_t image_id = batch.targets[b].image_id.item<int64_t>();
    append_results(dets[b], image_id, out.detections);
    if (dets[b].has_masks()) append_mask_results(dets[b], image_id, out.mask_detections);
  }
  return outputs;
}

EvalOutput evaluate(TrainSetup& t,
                    datasets::DataLoader& loader,
                    const datasets::CocoDataset& data,
                    const std::function<bool()>& should_stop) {
  torch::NoGradGuard no_grad;
  t.model.module().eval();
  t.criterion->eval();
  EvalOutput out;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    if (should_stop && should_stop())
      throw std::runtime_error(
          "evaluation interrupted by a signal (the epoch's checkpoint was written before evaluating)");
    evaluate_batch(t, *batch, out);
  }
  dist::ProcessGroup* group = t.group();
  if (group) gather_evaluation(out, *group);
  // "lr" has no meaning in evaluation: drop it as upstream's evaluate has no lr meter.
  MetricLogger stats;
  for (const auto& [k, v] : out.stats.averages())
    if (k != "lr") stats.update(k, v);
  out.stats = stats;
  if (!group || group->is_main()) {
    out.coco = datasets::evaluate_bbox(data, out.detections);
    if (!out.mask_detections.empty()) out.coco_masks = datasets::evaluate_segm(data, out.mask_detections);
    out.per_class =
        datasets::per_class_rows(data.categories, out.coco, out.mask_detections.empty() ? nullptr : &out.coco_masks);
    out.confusion = datasets::confusion_matrix(data, out.detections);
  }
  return out;
}

}  // namespace detr
