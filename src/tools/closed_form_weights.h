// Closed-form weights: every state_dict entry computed from its key and element index alone, so a
// golden-data fixture stores only its configuration and expected tensors (tests/data/detr). The
// Python twin that upstream's reference runs is tests/reference/closed_form_weights.py; the rule:
//
//   h = FNV-1a-64(key), z = splitmix64(h + i * 0x9E3779B97F4A7C15), u = (z >> 40) / 2^24 in [0, 1)
//   *.running_var -> 0.5 + u            *.running_mean -> 0.2 (2u - 1)
//   1-D *.weight  -> 0.5 + u            *bias          -> 0.1 (2u - 1)
//   other         -> sqrt(3 / fan_in) (2u - 1), fan_in = numel / size(0)
//
// in double precision, rounded once to float.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace detr {

// The value of every element of the floating state_dict entry `key` of shape `shape`, row-major.
std::vector<float> closed_form_weights(std::string_view key, const std::vector<int64_t>& shape);

}  // namespace detr
