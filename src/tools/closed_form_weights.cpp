#include "src/tools/closed_form_weights.h"

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace detr {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t fnv1a64(std::string_view key) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : key) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::vector<float> closed_form_weights(std::string_view key, const std::vector<int64_t>& shape) {
  const int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  if (n < 0) throw std::invalid_argument("closed_form_weights: negative size for '" + std::string(key) + "'");
  // Either v = 0.5 + u (norm scales, variances) or v = amplitude * (2u - 1): the Python twin's
  // expressions exactly, so both round identically.
  const bool scale_like = ends_with(key, "running_var") || (ends_with(key, "weight") && shape.size() == 1);
  double amplitude = 0;
  if (ends_with(key, "running_mean")) {
    amplitude = 0.2;
  } else if (ends_with(key, "bias")) {
    amplitude = 0.1;
  } else if (!scale_like && !shape.empty() && shape[0] > 0) {
    amplitude = std::sqrt(3.0 / double(n / shape[0]));
  }
  const uint64_t h = fnv1a64(key);
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(splitmix64(h + uint64_t(i) * kGolden) >> 40) / double(1 << 24);
    out[size_t(i)] = static_cast<float>(scale_like ? 0.5 + u : amplitude * (2 * u - 1));
  }
  return out;
}

}  // namespace detr
