#include "src/tools/parity.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "datasets/coco_mask.h"
#include "models/detr.h"
#include "models/post_process.h"
#include "models/segmentation.h"
#include "models/set_criterion.h"
#include "src/tools/closed_form_weights.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"

namespace detr {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

// A {name: tensor} file (plain dict, OrderedDict or a checkpoint holding "model"), in any torch.save
// format, through the same reader users' checkpoints go through.
std::map<std::string, torch::Tensor> read_tensor_dict(const std::string& path) {
  return serialization::to_state_dict(serialization::torch_load(path));
}

void load_state_dict(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& sd) {
  serialization::load_state_dict(model, sd, serialization::LoadOptions::strict());
}

// A segmentation fixture's stored weights (the fixtures' README): its base fixture's model.pth under
// "detr." and head.pth (bbox_attention.*, mask_head.*).
std::map<std::string, torch::Tensor> segmentation_fixture_weights(const fs::path& dir, const nlohmann::json& config) {
  const auto base = config.at("base_fixture").get<std::string>();
  std::map<std::string, torch::Tensor> sd;
  for (auto& [key, t] : read_tensor_dict((dir / ".." / base / "model.pth").string())) sd["detr." + key] = t;
  for (auto& [key, t] : read_tensor_dict((dir / "head.pth").string())) sd[key] = t;
  return sd;
}

// The fixture's initial weights: model.pth (with base_fixture: that fixture's and head.pth), or
// computed by the rule config.json names ("weights_rule": "closed_form_v1", closed_form_weights.h)
// for every entry of the model.
void load_fixture_weights(torch::nn::Module& model, const fs::path& dir, const nlohmann::json& config) {
  if (config.contains("base_fixture")) return load_state_dict(model, segmentation_fixture_weights(dir, config));
  const auto file = dir / "model.pth";
  if (!config.contains("weights_rule")) return load_state_dict(model, read_tensor_dict(file.string()));
  const auto rule = config["weights_rule"];
  if (rule != "closed_form_v1")
    throw std::runtime_error((dir / "config.json").string() + ": unknown weights_rule " + rule.dump());
  std::map<std::string, torch::Tensor> sd;
  for (const auto& [key, t] : serialization::module_state(model)) {
    if (!t.is_floating_point()) {
      sd[key] = torch::zeros_like(t);
      continue;
    }
    auto values = closed_form_weights(key, t.sizes().vec());
    sd[key] = torch::from_blob(values.data(), t.sizes(), torch::kFloat).clone();
  }
  load_state_dict(model, sd);
}

class Checker {
 public:
  Checker(ParityReport& report,
          const std::map<std::string, torch::Tensor>& expected,
          std::map<std::string, torch::Tensor>& ours)
      : report_(report), expected_(expected), ours_(ours) {}

  const torch::Tensor& ref(const std::string& name) {
    auto it = expected_.find(name);
    if (it == expected_.end()) throw std::runtime_error("expected.pth has no entry '" + name + "'");
    return it->second;
  }
  bool has(const std::string& name) const { return expected_.count(name) != 0; }

  // kind: 'a' activation/loss, 'g' gradient, 'x' exact.
  void compare(const std::string& name, const torch::Tensor& ours_in, char kind) {
    auto want = ref(name).to(torch::kDouble);
    auto ours = ours_in.detach().to(torch::kCPU, torch::kDouble);
    ours_[name] = ours;
    if (ours.sizes() != want.sizes()) {
      std::ostringstream s;
      s << name << ": shape " << ours.sizes() << ", expected " << want.sizes();
      report_.problems.push_back(s.str());
      return;
    }
    const double ref_max = want.numel() ? want.abs().max().item<double>() : 0.0;
    const double diff = want.numel() ? (ours - want).abs().max().item<double>() : 0.0;
    const double tol = kind == 'x' ? 0.0 : kind == 'g' ? 1e-3 * ref_max : 1e-4 * std::max(1.0, ref_max);
    report_.rows.push_back({name, std::isnan(diff) ? INFINITY : diff, ref_max, tol, kind == 'g'});
  }

 private:
  ParityReport& report_;
  const std::map<std::string, torch::Tensor>& expected_;
  std::map<std::string, torch::Tensor>& ours_;
};

}  // namespace

bool ParityReport::ok() const {
  if (!problems.empty() || rows.empty()) return false;
  for (const auto& r : rows)
    if (!r.ok()) return false;
  return true;
}

std::string ParityReport::format() const {
  std::ostringstream s;
  size_t width = 4;
  for (const auto& r : rows) width = std::max(width, r.name.size());
  s << "parity: " << fixture << "\n";
  s << std::left << std::setw(static_cast<int>(width)) << "name"
    << "  " << std::right << std::setw(12) << "max|diff|"
    << "  " << std::setw(12) << "max|ref|"
    << "  " << std::setw(12) << "tolerance"
    << "  note\n";
  double worst_rel = 0;
  for (const auto& r : rows) {
    s << std::left << std::setw(static_cast<int>(width)) << r.name << "  " << std::right << std::scientific
      << std::setprecision(3) << std::setw(12) << r.max_abs_diff << "  " << std::setw(12) << r.ref_max_abs << "  "
      << std::setw(12) << r.tolerance
      << (r.within_tolerance() ? ""
          : r.ok()             ? "  ok in float64:"
                               : "  FAIL");
    if (r.exact_diff >= 0) s << " float64 max|diff| " << r.exact_diff << ", float32 rounding " << r.rounding;
    s << "\n";
    if (r.tolerance > 0) worst_rel = std::max(worst_rel, r.max_abs_diff / r.tolerance);
  }
  for (const auto& p : problems) s << "problem: " << p << "\n";
  size_t failed = 0;
  for (const auto& r : rows) failed += r.ok() ? 0 : 1;
  s << std::defaultfloat << (ok() ? "PASS" : "FAIL") << ": " << rows.size() << " comparisons, " << failed
    << " beyond tolerance, " << problems.size() << " problems; worst deviation " << std::setprecision(3) << worst_rel
    << " of its tolerance\n";
  return s.str();
}

namespace {

// Every `grad.<param>` of the fixture against the parameter's gradient after backward.
void check_gradients(const torch::nn::Module& model,
                     const std::map<std::string, torch::Tensor>& expected,
                     Checker& check,
                     ParityReport& report) {
  const auto params = model.named_parameters();
  for (const auto& [name, value] : expected) {
    if (name.rfind("grad.", 0) != 0) continue;
    const auto pname = name.substr(5);
    const auto* p = params.find(pname);
    if (!p) {
      report.problems.push_back("model has no parameter '" + pname + "'");
    } else if (!p->grad().defined()) {
      report.problems.push_back("parameter '" + pname + "' got no gradient");
    } else {
      check.compare(name, p->grad(), 'g');
    }
  }
}

// The fixture's model: DETR, or DETRsegm around it for a segmentation fixture ("masks": true).
struct FixtureModel {
  models::DETR detr{nullptr};
  models::DETRsegm segm{nullptr};
  torch::nn::Module& module() { return segm ? static_cast<torch::nn::Module&>(*segm) : *detr; }
  models::DetrOutput forward(const util::NestedTensor& samples) {
    return segm ? segm->forward(samples) : detr->forward(samples);
  }
};

FixtureModel build_fixture_model(const models::ModelConfig& config, const nlohmann::json& config_json) {
  FixtureModel m;
  if (config.masks) {
    m.segm = models::build_segmentation_model(config, config_json.value("freeze_detr", false));
    m.detr = m.segm->detr;
  } else {
    m.detr = models::build_model(config);
  }
  return m;
}

// The last backbone level, its mask and position embedding (box fixtures record them).
void check_backbone(FixtureModel& model, const util::NestedTensor& samples, Checker& check) {
  if (!check.has("backbone.feature")) return;
  torch::NoGradGuard no_grad;
  auto [features, pos] = model.detr->backbone->forward(samples);
  check.compare("backbone.feature", features.tensors, 'a');
  check.compare("backbone.mask", features.mask, 'x');
  check.compare("backbone.pos", pos, 'a');
}

void check_outputs(const models::DetrOutput& out, Checker& check, ParityReport& report) {
  check.compare("out.pred_logits", out.pred_logits, 'a');
  check.compare("out.pred_boxes", out.pred_boxes, 'a');
  for (size_t i = 0; i < out.aux_outputs.size(); ++i) {
    const auto p = "aux." + std::to_string(i) + ".";
    if (out.pred_masks.defined() && !check.has(p + "pred_logits")) continue;  // r50_segm records none
    check.compare(p + "pred_logits", out.aux_outputs[i].pred_logits, 'a');
    check.compare(p + "pred_boxes", out.aux_outputs[i].pred_boxes, 'a');
  }
  if (check.has("aux." + std::to_string(out.aux_outputs.size()) + ".pred_logits"))
    report.problems.push_back("expected.pth has more aux outputs than the model produced");
  if (check.has("out.pred_masks") != out.pred_masks.defined())
    report.problems.push_back(out.pred_masks.defined() ? "expected.pth has no out.pred_masks"
                                                       : "the model produced no pred_masks");
  else if (out.pred_masks.defined())
    check.compare("out.pred_masks", out.pred_masks, 'a');
}

// DETRsegm's two heads alone on the fixture's random inputs ("module.*"; committed fixtures only): the
// model's decoder queries are nearly alike, so pred_masks alone would barely tell queries apart.
void check_head_modules(FixtureModel& model, torch::ScalarType dtype, Checker& check) {
  if (!model.segm || !check.has("module.bbox_attention.out")) return;
  torch::NoGradGuard no_grad;
  auto in = [&](const std::string& name) { return check.ref("module." + name).to(dtype); };
  check.compare("module.bbox_attention.out",
                model.segm->bbox_attention(in("bbox_attention.q"), in("bbox_attention.k"),
                                           check.ref("module.bbox_attention.mask").to(torch::kBool)),
                'a');
  check.compare("module.mask_head.out",
                model.segm->mask_head->forward(in("mask_head.x"), in("mask_head.bbox_mask"),
                                               {in("mask_head.fpn.0"), in("mask_head.fpn.1"), in("mask_head.fpn.2")}),
                'a');
}

std::vector<util::Target> read_targets(int64_t batch, torch::ScalarType dtype, Checker& check) {
  std::vector<util::Target> targets;
  for (int64_t b = 0; b < batch; ++b) {
    const auto p = "target." + std::to_string(b) + ".";
    util::Target t{check.ref(p + "boxes").to(dtype), check.ref(p + "labels").to(torch::kLong)};
    if (check.has(p + "masks")) t.masks = check.ref(p + "masks").to(torch::kBool);
    targets.push_back(t);
  }
  return targets;
}

// The final layer's matching, every loss term and the weighted total; returns the total.
torch::Tensor check_losses(models::SetCriterion& criterion,
                           const models::DetrOutput& out,
                           const std::vector<util::Target>& targets,
                           const std::map<std::string, torch::Tensor>& expected,
                           Checker& check,
                           ParityReport& report) {
  auto result = criterion->forward(out, targets);
  for (size_t b = 0; b < targets.size(); ++b) {
    const auto& m = result.matchings[0][b];
    const auto p = "match." + std::to_string(b) + ".";
    check.compare(p + "src", torch::tensor(m.src, torch::kLong), 'x');
    check.compare(p + "tgt", torch::tensor(m.tgt, torch::kLong), 'x');
  }
  for (const auto& item : result.losses) check.compare("loss." + item.key(), item.value(), 'a');
  for (const auto& [name, value] : expected) {
    if (name.rfind("loss.", 0) == 0 && name != "loss.total" && !result.losses.contains(name.substr(5)))
      report.problems.push_back("our criterion has no term '" + name.substr(5) + "'");
  }
  auto total = criterion->weighted_total(result.losses);
  check.compare("loss.total", total, 'a');
  return total;
}

// Each post-processed mask's compressed RLE (pycocotools' encode) against the fixture's strings:
// one row per image, counting the queries whose string differs.
void check_rle_counts(const std::vector<models::Detections>& dets,
                      const nlohmann::json& rle_counts,
                      ParityReport& report) {
  for (size_t b = 0; b < dets.size(); ++b) {
    const auto& want = rle_counts.at(std::to_string(b));
    const int64_t queries = dets[b].fed_masks.size(0);
    const auto [h, w] = dets[b].orig_size;
    if (want.size() != static_cast<size_t>(queries)) {
      report.problems.push_back("postprocess_rle_counts." + std::to_string(b) + ": " + std::to_string(want.size()) +
                                " strings for " + std::to_string(queries) + " masks");
      continue;
    }
    double differing = 0;
    for (int64_t q = 0; q < queries; ++q) {
      const auto mask = dets[b].mask(q).contiguous();  // [H, W] uint8
      const auto rle = datasets::encode(mask.data_ptr<uint8_t>(), h, w, datasets::MaskLayout::row_major);
      differing += datasets::rle_to_string(rle) == want[q].get<std::string>() ? 0 : 1;
    }
    report.rows.push_back(
        {"postprocess." + std::to_string(b) + ".rle_counts (differing)", differing, static_cast<double>(queries), 0});
  }
}

// Upstream's PostProcess (and PostProcessSegm for segmentation fixtures) on the outputs.
void check_postprocess(const models::DetrOutput& out,
                       const nlohmann::json& config_json,
                       Checker& check,
                       ParityReport& report) {
  const bool segm = check.has("postprocess.orig_target_sizes");
  if (!segm && !check.has("postprocess.target_sizes")) return;
  auto dets = models::post_process(out, check.ref(segm ? "postprocess.orig_target_sizes" : "postprocess.target_sizes"));
  if (segm) {
    const double threshold = config_json.value("postprocess_threshold", 0.5);
    models::post_process_segm(dets, out, check.ref("postprocess.orig_target_sizes"),
                              check.ref("postprocess.max_target_sizes"), threshold);
  }
  for (size_t b = 0; b < dets.size(); ++b) {
    const auto p = "postprocess." + std::to_string(b) + ".";
    check.compare(p + "scores", dets[b].scores, 'a');
    check.compare(p + "labels", dets[b].labels, 'x');
    check.compare(p + "boxes", dets[b].boxes, 'a');
    if (segm) {  // each query's pixel count at the original size
      std::vector<int64_t> area;
      for (int64_t q = 0; q < dets[b].fed_masks.size(0); ++q) area.push_back(dets[b].mask(q).sum().item<int64_t>());
      check.compare(p + "mask_area", torch::tensor(area, torch::kLong), 'x');
    }
  }
  if (segm && config_json.contains("postprocess_rle_counts"))
    check_rle_counts(dets, config_json.at("postprocess_rle_counts"), report);
}

// Runs the fixture at `dtype`; `ours` receives every compared value (float64, CPU).
ParityReport compute_parity(const std::string& dir_str,
                            torch::ScalarType dtype,
                            std::map<std::string, torch::Tensor>& ours,
                            const models::ConvKernels& kernels) {
  const fs::path dir(dir_str);
  ParityReport report;
  report.fixture = dir.string();
  const auto config_json = read_json(dir / "config.json");
  auto config = models::model_config_from_json(config_json);

  auto model = build_fixture_model(config, config_json);
  load_fixture_weights(model.module(), dir, config_json);
  model.module().to(dtype);
  model.detr->set_conv_kernels(kernels);
  model.module().train();  // upstream's fixtures: train mode, dropout 0 (frozen BN makes it deterministic)
  auto criterion = models::build_criterion(config);
  criterion->to(dtype);

  const auto expected = read_tensor_dict((dir / "expected.pth").string());
  Checker check(report, expected, ours);
  util::NestedTensor samples{check.ref("input.tensors").to(dtype), check.ref("input.mask").to(torch::kBool)};
  check_backbone(model, samples, check);
  check_head_modules(model, dtype, check);
  auto out = model.forward(samples);
  check_outputs(out, check, report);
  const auto targets = read_targets(samples.tensors.size(0), dtype, check);
  auto total = check_losses(criterion, out, targets, expected, check, report);
  total.backward();
  check_gradients(model.module(), expected, check, report);
  check_postprocess(out, config_json, check, report);
  return report;
}

// Runs `fn` under another valid CPU kernel configuration (oneDNN or ATen's own convolutions, with
// `threads` intra-op threads), restoring the current one afterwards.
template <typename Fn>
void with_kernels(bool mkldnn, int threads, Fn fn) {
  auto& ctx = at::globalContext();
  const int saved_threads = at::get_num_threads();
  const bool saved_mkldnn = ctx.userEnabledMkldnn();
  auto restore = [&] {
    at::set_num_threads(saved_threads);
    ctx.setUserEnabledMkldnn(saved_mkldnn);
  };
  at::set_num_threads(threads);
  ctx.setUserEnabledMkldnn(mkldnn);
  try {
    fn();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

ParityReport run_forward_parity(const std::string& dir, torch::ScalarType dtype, const models::ConvKernels& kernels) {
  std::map<std::string, torch::Tensor> ours, exact;
  auto report = compute_parity(dir, dtype, ours, kernels);
  bool gradient_beyond = false;
  for (const auto& r : report.rows) gradient_beyond |= r.gradient && !r.within_tolerance();
  if (!gradient_beyond || dtype == torch::kDouble) return report;
  // The exact math, and how far float32 rounding alone moves each value: the largest deviation from
  // float64 over our run and upstream's operation order (frozen BN unfolded) under three valid kernel
  // configurations (the reference's own configuration is unknown).
  const auto exact_report = compute_parity(dir, torch::kDouble, exact, kernels);
  // Upstream's exact operation order and layout: NCHW, conv then frozen BN, LibTorch's kernels.
  const models::ConvKernels upstream_order{false, false, models::ConvAlgorithm::kDirect};
  std::vector<std::map<std::string, torch::Tensor>> variants{ours};
  for (auto [mkldnn, threads] : {std::pair{true, 1}, std::pair{true, 2}, std::pair{false, 2}}) {
    variants.emplace_back();
    with_kernels(mkldnn, threads, [&] { compute_parity(dir, dtype, variants.back(), upstream_order); });
  }
  for (auto& r : report.rows) {
    if (!r.gradient || r.within_tolerance()) continue;
    for (const auto& e : exact_report.rows)
      if (e.name == r.name) r.exact_diff = e.max_abs_diff;
    r.rounding = 0;
    for (const auto& v : variants) r.rounding = std::max(r.rounding, max_abs_diff(v.at(r.name), exact.at(r.name)));
  }
  return report;
}

}  // namespace detr

#include "src/engine.h"
#include "src/optimizer.h"

namespace detr {

namespace {
// The listed `final.<param>` values and the sum of every trainable parameter after the last step.
void check_final_parameters(const torch::nn::Module& model,
                            const std::map<std::string, torch::Tensor>& expected,
                            Checker& check,
                            ParityReport& report) {
  const auto params = model.named_parameters();
  double param_sum = 0;
  for (const auto& p : params)
    if (p.value().requires_grad()) param_sum += p.value().to(torch::kDouble).sum().item<double>();
  for (const auto& [name, value] : expected) {
    if (name.rfind("final.", 0) != 0 || name == "final.param_sum") continue;
    const auto* p = params.find(name.substr(6));
    if (!p) {
      report.problems.push_back("model has no parameter '" + name.substr(6) + "'");
      continue;
    }
    check.compare(name, *p, 'a');
  }
  const double ref_sum = check.ref("final.param_sum").to(torch::kDouble).item<double>();
  report.rows.push_back(
      {"final.param_sum", std::abs(param_sum - ref_sum), std::abs(ref_sum), 1e-5 * std::abs(ref_sum)});
}
}  // namespace

ParityReport run_train_parity(const std::string& dir_str, const models::ConvKernels& kernels) {
  const fs::path dir(dir_str);
  ParityReport report;
  report.fixture = dir.string();
  const auto cj = read_json(dir / "config.json");
  auto config = models::model_config_from_json(cj);
  auto number = [&](const char* key) {
    if (!cj.contains(key) || !cj[key].is_number())
      throw std::runtime_error((dir / "config.json").string() + ": missing number '" + key + "'");
    return cj[key].get<double>();
  };
  AdamWOptions opt;
  opt.lr = number("lr");
  opt.lr_backbone = number("lr_backbone");
  opt.weight_decay = number("weight_decay");
  config.train_backbone = opt.lr_backbone > 0;
  const double clip = number("clip_max_norm");
  const auto lr_drop = static_cast<int64_t>(number("lr_drop"));
  const auto steps_per_epoch = static_cast<int64_t>(number("steps_per_epoch"));
  const auto steps = static_cast<int64_t>(number("steps"));

  auto model = models::build_model(config);
  load_fixture_weights(*model, dir, cj);
  model->set_conv_kernels(kernels);
  auto criterion = models::build_criterion(config);
  AdamW optimizer(*model, opt);
  TrainSetup setup{model, criterion, &optimizer, torch::kCPU, clip, {}, {}};
  StepLR scheduler(optimizer, lr_drop);

  const auto batches = read_tensor_dict((dir / "batches.pth").string());
  const auto expected = read_tensor_dict((dir / "expected.pth").string());
  std::map<std::string, torch::Tensor> ours;
  Checker check(report, expected, ours);
  int64_t n_batches = 0;
  while (batches.count("batch." + std::to_string(n_batches) + ".tensors")) ++n_batches;
  if (n_batches == 0) throw std::runtime_error((dir / "batches.pth").string() + ": no batch.0.tensors");

  auto get = [&](const std::string& k) -> const torch::Tensor& {
    auto it = batches.find(k);
    if (it == batches.end()) throw std::runtime_error("batches.pth has no entry '" + k + "'");
    return it->second;
  };
  for (int64_t s = 0; s < steps; ++s) {
    const auto p = "batch." + std::to_string(s % n_batches) + ".";
    datasets::Batch batch;
    batch.samples = {get(p + "tensors").to(torch::kFloat), get(p + "mask").to(torch::kBool)};
    for (int64_t b = 0; b < batch.samples.tensors.size(0); ++b) {
      const auto t = p + "target." + std::to_string(b) + ".";
      batch.targets.push_back({get(t + "boxes").to(torch::kFloat), get(t + "labels").to(torch::kLong)});
    }
    model->train();
    const double lr = optimizer.groups()[0].lr;
    auto out = train_step(setup, batch);
    const auto sp = "step." + std::to_string(s) + ".";
    // Scalars: relative tolerances expressed through the row's tolerance.
    auto scalar = [&](const std::string& name, double value, double rel) {
      const double ref = check.ref(name).to(torch::kDouble).item<double>();
      report.rows.push_back({name, std::abs(value - ref), std::abs(ref), rel * std::abs(ref)});
    };
    scalar(sp + "loss", out.loss, 1e-4);
    scalar(sp + "grad_norm", out.grad_norm, 1e-4);
    scalar(sp + "lr", lr, 0.0);
    if ((s + 1) % steps_per_epoch == 0) scheduler.step();
  }
  check_final_parameters(*model, expected, check, report);
  return report;
}

}  // namespace detr
