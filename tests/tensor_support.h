// Helpers for tests that use LibTorch: reading golden .pth dicts.
#pragma once
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <string>

namespace detr::testing {

// A plain {str: tensor} dict in torch.save's zip format, through LibTorch's own reader.
inline std::map<std::string, torch::Tensor> load_plain_tensor_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : torch::pickle_load(bytes).toGenericDict()) out[kv.key().toStringRef()] = kv.value().toTensor();
  return out;
}

}  // namespace detr::testing
