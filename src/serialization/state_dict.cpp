// load_state_dict: match by name, check shapes, report, copy under NoGradGuard.
#include "src/serialization/state_dict.h"

#include <sstream>
#include <stdexcept>

#include "src/serialization/torch_save.h"

namespace detr::serialization {

namespace {

constexpr size_t kMaxListed = 20;  // names listed per category in messages

std::string shape(const torch::Tensor& t) { return c10::str(t.sizes()); }

bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

void list_names(std::ostream& os, const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return;
  os << "; " << what << " (" << names.size() << "):";
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i)
    os << " " << names[i] << (i + 1 < names.size() ? "," : "");
  if (names.size() > kMaxListed) os << " ... and " << names.size() - kMaxListed << " more";
}

// Matches `state` against `target` (name -> module tensor), fills the report, copies when allowed.
LoadReport load_into(const std::map<std::string, torch::Tensor>& target,
                     const std::map<std::string, torch::Tensor>& state,
                     const LoadOptions& options,
                     LoadReport report = {}) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (destination, source)
  for (const auto& [name, dst] : target) {
    auto it = state.find(name);
    if (it == state.end()) {
      report.missing.push_back(name);
      continue;
    }
    const torch::Tensor& src = it->second;
    if (!src.defined()) {
      report.missing.push_back(name);
      continue;
    }
    if (src.sizes() != dst.sizes()) {
      const std::string what = name + ": checkpoint " + shape(src) + " vs model " + shape(dst);
      (has_prefix(name, options.skip_mismatched_prefixes) ? report.skipped : report.mismatched).push_back(what);
      continue;
    }
    if (src.scalar_type() != dst.scalar_type())
      report.converted.push_back(name + ": " + dtype_name(src.scalar_type()) + " -> " + dtype_name(dst.scalar_type()));
    copies.emplace_back(dst, src);
    report.loaded.push_back(name);
  }
  for (const auto& [name, t] : state)
    if (!target.count(name)) report.unexpected.push_back(name);

  const bool fail = (options.error_on_missing && !report.missing.empty()) ||
                    (options.error_on_unexpected && !report.unexpected.empty()) ||
                    (options.error_on_mismatch && !report.mismatched.empty());
  if (fail) {
    std::ostringstream os;
    os << "state dict does not match the model (" << report.loaded.size() << " of " << target.size()
       << " entries match)";
    if (options.error_on_missing) list_names(os, "missing", report.missing);
    if (options.error_on_unexpected) list_names(os, "unexpected", report.unexpected);
    if (options.error_on_mismatch) list_names(os, "shape mismatch", report.mismatched);
    throw std::runtime_error(os.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  return report;
}

}  // namespace

LoadOptions LoadOptions::strict() { return {}; }
LoadOptions LoadOptions::non_strict() {
  LoadOptions o;
  o.error_on_missing = o.error_on_unexpected = o.error_on_mismatch = false;
  return o;
}
LoadOptions LoadOptions::fine_tune() {
  LoadOptions o;
  o.skip_mismatched_prefixes = {"class_embed.", "query_embed."};
  return o;
}

std::string LoadReport::summary() const {
  std::ostringstream os;
  os << "loaded " << loaded.size() << " tensors";
  if (!converted.empty()) os << " (" << converted.size() << " converted, e.g. " << converted.front() << ")";
  if (!skipped.empty()) os << "; skipped " << skipped.size() << " with other shapes";
  if (!ignored.empty()) os << "; ignored " << ignored.size();
  list_names(os, "skipped", skipped);
  list_names(os, "missing", missing);
  list_names(os, "unexpected", unexpected);
  list_names(os, "shape mismatch", mismatched);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const LoadReport& r) { return os << r.summary(); }

std::map<std::string, torch::Tensor> module_state(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace(b.key(), b.value());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module,
                           const std::map<std::string, torch::Tensor>& state,
                           const LoadOptions& options) {
  return load_into(module_state(module), state, options);
}

LoadReport load_state_dict(torch::nn::Module& module, const PyValue& state_or_checkpoint, const LoadOptions& options) {
  return load_state_dict(module, to_state_dict(state_or_checkpoint), options);
}

LoadReport load_state_dict(torch::nn::Module& module, const std::filesystem::path& path, const LoadOptions& options) {
  const PyValue v = torch_load(path);
  try {
    return load_state_dict(module, v, options);
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

LoadReport load_backbone_weights(torch::nn::Module& model, const std::filesystem::path& path) {
  static const std::string kBody = "backbone.0.body.";
  const PyValue v = torch_load(path);
  try {
    const auto state = to_state_dict(v);
    bool detr_keys = false;
    for (const auto& [k, t] : state) detr_keys |= k.rfind(kBody, 0) == 0;
    LoadReport report;
    std::map<std::string, torch::Tensor> mapped;
    for (const auto& [key, t] : state) {
      std::string k = key.rfind("module.", 0) == 0 ? key.substr(7) : key;  // DataParallel
      const bool keep = detr_keys ? k.rfind(kBody, 0) == 0
                                  : k.rfind("fc.", 0) != 0 && k.find("num_batches_tracked") == std::string::npos;
      if (!keep) {
        report.ignored.push_back(key);
        continue;
      }
      mapped.emplace(detr_keys ? k : kBody + k, t);
    }
    std::map<std::string, torch::Tensor> target;
    for (const auto& [k, t] : module_state(model))
      if (k.rfind(kBody, 0) == 0) target.emplace(k, t);
    if (target.empty()) throw std::runtime_error("the model has no " + kBody + "* entries");
    return load_into(target, mapped, LoadOptions::strict(), std::move(report));
  } catch (const std::exception& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

}  // namespace detr::serialization
