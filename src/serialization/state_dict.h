// Loading state dicts into torch::nn::Module, as Python's Module.load_state_dict does.
//
// The module's entries are named_parameters() + named_buffers() (recursive, dotted names, as in
// Python). Values are copied under NoGradGuard with copy_, which converts dtype (fp16 checkpoints
// into fp32 models) and device. Nothing is copied when the load fails.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "src/serialization/pickle.h"

namespace detr::serialization {

struct LoadOptions {
  bool error_on_missing = true;     // module entries the state dict lacks
  bool error_on_unexpected = true;  // state dict entries the module lacks
  bool error_on_mismatch = true;    // shape differs (outside skip_mismatched_prefixes)
  // Entries under these prefixes whose shapes differ are skipped and reported, never an error
  // (e.g. "class_embed." when fine-tuning with another num_classes).
  std::vector<std::string> skip_mismatched_prefixes;

  static LoadOptions strict();      // every difference throws
  static LoadOptions non_strict();  // loads what matches, reports the rest
  // Strict, except that class_embed. and query_embed. are skipped when their shapes differ
  // (another num_classes / num_queries).
  static LoadOptions fine_tune();
};

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the module, not in the state dict
  std::vector<std::string> unexpected;  // in the state dict, not in the module
  std::vector<std::string> mismatched;  // "name: checkpoint [5, 8] vs model [92, 8]", not loaded
  std::vector<std::string> skipped;     // mismatched under skip_mismatched_prefixes, not loaded
  std::vector<std::string> ignored;     // dropped before matching (load_backbone_weights: fc., ...)
  std::vector<std::string> converted;   // "name: float16 -> float32"

  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // one line, then a line per non-empty problem list (names capped)
};
std::ostream& operator<<(std::ostream& os, const LoadReport& r);

// Throws std::runtime_error listing missing / unexpected / mismatched names when options say so.
LoadReport load_state_dict(torch::nn::Module& module,
                           const std::map<std::string, torch::Tensor>& state,
                           const LoadOptions& options = LoadOptions::strict());
// A plain state dict or a checkpoint holding one under "model" (see to_state_dict).
LoadReport load_state_dict(torch::nn::Module& module,
                           const PyValue& state_or_checkpoint,
                           const LoadOptions& options = LoadOptions::strict());
// From a torch.save file (zip or legacy); errors name the file.
LoadReport load_state_dict(torch::nn::Module& module,
                           const std::filesystem::path& path,
                           const LoadOptions& options = LoadOptions::strict());

// A torchvision ResNet state dict (conv1.weight, layer1.0.bn1.running_mean, ...) into DETR's
// backbone (backbone.0.body.*); fc.* and *.num_batches_tracked are ignored. A DETR checkpoint
// works too (its backbone.0.body.* entries are taken). Strict over the backbone's entries.
LoadReport load_backbone_weights(torch::nn::Module& model, const std::filesystem::path& path);

// The module's entries, named as in its state_dict.
std::map<std::string, torch::Tensor> module_state(torch::nn::Module& module);

}  // namespace detr::serialization
