#include "src/engine.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "models/post_process.h"
#include "src/util/box_ops.h"

namespace detr {

namespace {

std::vector<util::Target> targets_to(const std::vector<util::Target>& targets, const torch::Device& device) {
  std::vector<util::Target> out;
  for (const auto& t : targets) out.push_back(t.to(device, /*non_blocking=*/true));
  return out;
}

// Losses (then `extra`) to host doubles in one transfer; averaged over the ranks of `group` first
// (upstream reduce_dict).
std::vector<double> to_host(const models::LossDict& losses, const std::vector<torch::Tensor>& extra = {},
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
double global_num_boxes(const std::vector<util::Target>& targets, dist::ProcessGroup& group,
                        const torch::Device& device) {
  int64_t n = 0;
  for (const auto& t : targets) n += t.labels.size(0);
  auto count = torch::full({1}, static_cast<double>(n), torch::TensorOptions(torch::kFloat).device(device));
  group.all_reduce_sum(count);
  return std::max(count.item<double>() / group.world_size(), 1.0);
}

}  // namespace

namespace {
// Phase clock for StepTimings: synchronises the device so that GPU work lands in its phase.
class PhaseClock {
 public:
  PhaseClock(StepTimings* t, const torch::Device& d) : t_(t), device_(d) { if (t_) last_ = now(); }
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

StepOutput train_step(models::DETR& model, models::SetCriterion& criterion, AdamW& optimizer,
                      const datasets::Batch& batch, const torch::Device& device, double max_norm,
                      StepTimings* timings, const dist::StepSync* sync, const AmpState* amp) {
  PhaseClock clock(timings, device);
  dist::ProcessGroup* group = sync && sync->group && sync->group->world_size() > 1 ? sync->group : nullptr;
  auto samples = batch.samples.to(device, /*non_blocking=*/true);
  auto targets = targets_to(batch.targets, device);
  clock.mark(&StepTimings::h2d);
  const Precision precision = amp ? amp->precision : Precision::fp32;
  GradScaler* scaler = amp && amp->scaler && amp->scaler->enabled() ? amp->scaler : nullptr;
  models::DetrOutput outputs;
  {
    AutocastGuard autocast(device, precision);
    outputs = model->forward(samples);
  }
  if (precision != Precision::fp32) outputs = to_float32(outputs);  // matcher and losses in float32
  clock.mark(&StepTimings::forward);
  c10::optional<double> num_boxes;
  if (group) num_boxes = global_num_boxes(batch.targets, *group, device);
  auto result = criterion->forward(outputs, targets, num_boxes);
  auto total = criterion->weighted_total(result.losses);
  clock.mark(&StepTimings::loss);
  if (timings) {
    timings->matcher += criterion->last_matcher_seconds;
    timings->loss -= criterion->last_matcher_seconds;
  }

  StepOutput out;
  const auto host = to_host(result.losses, {total}, group);
  out.terms = named(result.losses, host);
  out.loss = host.back();
  if (!std::isfinite(out.loss)) {
    std::ostringstream msg;
    msg << "Loss is " << out.loss << ", stopping training. Loss terms:";
    for (const auto& [k, v] : out.terms) msg << " " << k << "=" << v;
    msg << " (lower --lr or --clip_max_norm, or check the data)";
    throw std::runtime_error(msg.str());
  }
  optimizer.zero_grad();
  (scaler ? scaler->scale_loss(total) : total).backward();
  clock.mark(&StepTimings::backward);
  if (group && sync->reducer) sync->reducer->average();
  clock.mark(&StepTimings::grad_sync);
  // fp16: true gradients before clipping; an overflow skips the step (the same on every rank, whose
  // gradients are equal after averaging).
  out.loss_scale = scaler ? scaler->scale() : 1.0;
  out.skipped = scaler && scaler->unscale(optimizer.all_params());
  out.grad_norm = clip_grad_norm(optimizer.all_params(), max_norm);
  if (!out.skipped) optimizer.step();
  if (scaler) scaler->update(out.skipped);
  // Gradients are not needed until the next backward: freed now, they do not add to the next
  // forward's activations (the peak of a step).
  optimizer.release_grads();
  clock.mark(&StepTimings::optimizer);
  return out;
}

void log_step(MetricLogger& logger, const StepOutput& step, const std::map<std::string, double>& weight_dict,
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

MetricLogger train_one_epoch(models::DETR& model, models::SetCriterion& criterion, AdamW& optimizer,
                             datasets::DataLoader& loader, int64_t epoch, const torch::Device& device,
                             double max_norm, const EpochCallbacks& cb, int64_t first_step,
                             const dist::StepSync* sync, const AmpState* amp) {
  model->train();
  criterion->train();
  MetricLogger logger;
  loader.start_epoch(epoch, first_step);
  const int64_t n = loader.size();
  dist::ProcessGroup* group = sync && sync->group && sync->group->world_size() > 1 ? sync->group : nullptr;
  for (int64_t i = first_step; i < n; ++i) {
    bool stop = cb.should_stop && cb.should_stop();
    if (group) {  // one rank's signal stops every rank after the same step
      auto votes = torch::full({1}, stop ? 1.0f : 0.0f);
      group->all_reduce_sum(votes);
      stop = votes.item<float>() > 0;
    }
    if (stop) break;
    const auto t0 = std::chrono::steady_clock::now();
    auto batch = loader.next();
    if (!batch) break;
    StepOutput step;
    try {
      step = train_step(model, criterion, optimizer, *batch, device, max_norm, nullptr, sync, amp);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      if (what.find("out of memory") == std::string::npos) throw;
      const auto& t = batch->samples.tensors;
      throw std::runtime_error("out of memory on " + device.str() + " at --batch_size " + std::to_string(t.size(0)) +
                               " with images padded to " + std::to_string(t.size(2)) + "x" + std::to_string(t.size(3)) +
                               ": lower --batch_size, or use smaller images (--scales 480,512,544 --max_size 800), "
                               "or a smaller --backbone / --hidden_dim");
    }
    log_step(logger, step, criterion->weight_dict, optimizer.groups()[0].lr);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (cb.on_step) cb.on_step(i, n, step, batch->samples.tensors.size(0), secs);
  }
  return logger;
}

namespace {
// Every rank's loss meters and detections, merged in rank order on every rank (upstream: metric
// synchronize_between_processes and CocoEvaluator's all_gather). Detections travel as 7 doubles each.
void gather_evaluation(EvalOutput& out, dist::ProcessGroup& group) {
  std::vector<double> packed;
  packed.reserve(out.detections.size() * 7);
  for (const auto& d : out.detections) {
    packed.insert(packed.end(), {static_cast<double>(d.image_id), static_cast<double>(d.category_id), d.bbox[0],
                                 d.bbox[1], d.bbox[2], d.bbox[3], d.score});
  }
  const auto dets = group.all_gather_bytes(
      std::string(reinterpret_cast<const char*>(packed.data()), packed.size() * sizeof(double)));
  const auto meters = group.all_gather_bytes(out.stats.state().dump());
  out.stats = MetricLogger();
  out.detections.clear();
  for (int r = 0; r < group.world_size(); ++r) {
    out.stats.merge(nlohmann::json::parse(meters[static_cast<size_t>(r)]));
    const auto& bytes = dets[static_cast<size_t>(r)];
    std::vector<double> v(bytes.size() / sizeof(double));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
    for (size_t k = 0; k + 7 <= v.size(); k += 7) {
      datasets::CocoAnnotation d;
      d.id = static_cast<int64_t>(out.detections.size()) + 1;
      d.image_id = static_cast<int64_t>(v[k]);
      d.category_id = static_cast<int64_t>(v[k + 1]);
      d.bbox = {v[k + 2], v[k + 3], v[k + 4], v[k + 5]};
      d.area = d.bbox[2] * d.bbox[3];
      d.score = v[k + 6];
      out.detections.push_back(d);
    }
  }
}
}  // namespace

datasets::CocoGroundTruth to_ground_truth(const datasets::CocoDataset& data) {
  datasets::CocoGroundTruth gt;
  gt.categories = data.categories;
  for (const auto& rec : data.images) {
    gt.images.push_back({rec.id, rec.width, rec.height});
    for (const auto& o : rec.objects) {
      datasets::CocoAnnotation a;
      a.id = o.id;
      a.image_id = rec.id;
      a.category_id = o.category_id;
      a.bbox = o.bbox;
      a.area = o.area;
      a.iscrowd = o.iscrowd;
      gt.annotations.push_back(a);
    }
  }
  return gt;
}

EvalOutput evaluate(models::DETR& model, models::SetCriterion& criterion, datasets::DataLoader& loader,
                    const datasets::CocoDataset& data, const torch::Device& device,
                    const std::function<bool()>& should_stop, dist::ProcessGroup* group) {
  torch::NoGradGuard no_grad;
  model->eval();
  criterion->eval();
  EvalOutput out;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    if (should_stop && should_stop()) throw std::runtime_error("evaluation interrupted by a signal (the epoch's checkpoint was written before evaluating)");
    auto samples = batch->samples.to(device, true);
    auto targets = targets_to(batch->targets, device);
    auto outputs = model->forward(samples);
    auto result = criterion->forward(outputs, targets);
    StepOutput step;
    step.terms = named(result.losses, to_host(result.losses));
    step.loss = criterion->weighted_total(result.losses).item<double>();
    log_step(out.stats, step, criterion->weight_dict, NAN);

    std::vector<torch::Tensor> sizes;
    for (const auto& t : batch->targets) sizes.push_back(t.orig_size);
    auto dets = models::post_process(outputs, torch::stack(sizes));
    for (size_t b = 0; b < dets.size(); ++b) {
      auto boxes = util::box_xyxy_to_cxcywh(dets[b].boxes).to(torch::kCPU, torch::kDouble);  // -> xywh
      auto xywh = torch::cat({boxes.slice(1, 0, 2) - boxes.slice(1, 2) / 2, boxes.slice(1, 2)}, 1).contiguous();
      auto scores = dets[b].scores.to(torch::kCPU, torch::kDouble).contiguous();
      auto labels = dets[b].labels.to(torch::kCPU).contiguous();
      const int64_t image_id = batch->targets[b].image_id.item<int64_t>();
      const double* bx = xywh.data_ptr<double>();
      for (int64_t q = 0; q < scores.size(0); ++q) {
        datasets::CocoAnnotation d;
        d.id = static_cast<int64_t>(out.detections.size()) + 1;
        d.image_id = image_id;
        d.category_id = labels[q].item<int64_t>();
        d.bbox = {bx[4 * q], bx[4 * q + 1], bx[4 * q + 2], bx[4 * q + 3]};
        d.area = d.bbox[2] * d.bbox[3];
        d.score = scores.data_ptr<double>()[q];
        out.detections.push_back(d);
      }
    }
  }
  if (group && group->world_size() > 1) gather_evaluation(out, *group);
  // "lr" has no meaning in evaluation: drop it as upstream's evaluate has no lr meter.
  MetricLogger stats;
  for (const auto& [k, v] : out.stats.averages())
    if (k != "lr") stats.update(k, v);
  out.stats = stats;
  if (!group || group->is_main()) out.coco = datasets::evaluate_bbox(to_ground_truth(data), out.detections);
  return out;
}

}  // namespace detr
