// Exact rectangular linear-sum assignment (pure C++, no torch), equal to scipy.optimize.linear_sum_assignment.
#pragma once
#include <cstdint>
#include <vector>

namespace detr::models {

// Result of a rectangular assignment: min(rows, cols) pairs, row_ind ascending (as scipy).
struct Assignment {
  std::vector<int64_t> row_ind;
  std::vector<int64_t> col_ind;
};

// Minimum-cost assignment on a row-major [rows x cols] cost matrix, as scipy.optimize.linear_sum_assignment
// (shortest augmenting path, Crouse 2016 — the algorithm scipy uses, so that tie-breaking agrees where possible).
// rows or cols may be 0 (empty result). Throws std::invalid_argument naming the (row, col) and value of the first
// NaN or infinite entry ("linear_sum_assignment: cost[3][7] is nan"), and when no finite assignment exists.
Assignment linear_sum_assignment(const double* cost, int64_t rows, int64_t cols);

// Convenience overload for float costs (converted to double first).
Assignment linear_sum_assignment(const float* cost, int64_t rows, int64_t cols);

}  // namespace detr::models
