// Shortest-augmenting-path LSAP (Crouse 2016, "On implementing 2D rectangular assignment algorithms"),
// following the order of operations of scipy.optimize.linear_sum_assignment so that results, ties included,
// agree bit-for-bit with scipy on the same double costs.
#include "models/linear_sum_assignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace detr::models {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Scratch reused across calls on one thread: the matcher calls this several times per image and step.
struct Workspace {
  std::vector<double> cost;                     // converted and/or transposed copy, when one is needed
  std::vector<double> u, v, dist;               // row duals, column duals, shortest path costs
  std::vector<int64_t> path, col4row, row4col;  // path[j]: predecessor row of column j
  std::vector<int64_t> remaining;               // [0, num_remaining): unvisited columns; the rest: visited
};

Workspace& workspace() {
  thread_local Workspace w;
  return w;
}

// Throws naming the first (row-major) non-finite entry in original coordinates.
template <typename T>
void check_finite(const T* cost, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t k = 0; k < n; ++k) {
    if (std::isfinite(cost[k])) continue;
    const char* what = std::isnan(cost[k]) ? "nan" : (cost[k] > 0 ? "inf" : "-inf");
    throw std::invalid_argument("linear_sum_assignment: cost[" + std::to_string(k / cols) + "][" +
                                std::to_string(k % cols) + "] is " + what);
  }
}

// Dijkstra-like search from free row `row` over reduced costs of the [n x m] matrix c (n <= m).
// Returns the sink (first free column reached), or -1 if every remaining column is unreachable.
// On return min_val is the path length and remaining[num_remaining, m) holds the visited columns.
int64_t augmenting_path(
    const double* c, int64_t m, int64_t row, Workspace& w, double& min_val, int64_t& num_remaining) {
  // Reversed order, as scipy: a constant cost matrix then yields the identity assignment.
  for (int64_t k = 0; k < m; ++k) w.remaining[k] = m - 1 - k;
  std::fill(w.dist.begin(), w.dist.end(), kInf);
  num_remaining = m;
  min_val = 0;
  for (int64_t i = row;;) {
    const double* ci = c + i * m;
    const double ui = w.u[i];
    int64_t best = -1;
    double lowest = kInf;
    for (int64_t k = 0; k < num_remaining; ++k) {
      const int64_t j = w.remaining[k];
      const double r = min_val + ci[j] - ui - w.v[j];
      if (r < w.dist[j]) {
        w.path[j] = i;
        w.dist[j] = r;
      }
      // scipy's tie rule: on an equal minimum switch to a free column (it ends the path).
      if (w.dist[j] < lowest || (w.dist[j] == lowest && w.row4col[j] == -1)) {
        lowest = w.dist[j];
        best = k;
      }
    }
    min_val = lowest;
    if (lowest == kInf) return -1;
    const int64_t j = w.remaining[best];
    std::swap(w.remaining[best], w.remaining[--num_remaining]);  // front order as scipy's swap-remove
    if (w.row4col[j] == -1) return j;
    i = w.row4col[j];
  }
}

// Solves the [n x m] row-major problem (n <= m) into w.col4row / w.row4col.
void solve_wide(const double* c, int64_t n, int64_t m, Workspace& w) {
  w.u.assign(n, 0.0);
  w.v.assign(m, 0.0);
  w.dist.resize(m);
  w.path.assign(m, -1);
  w.col4row.assign(n, -1);
  w.row4col.assign(m, -1);
  w.remaining.resize(m);
  for (int64_t row = 0; row < n; ++row) {
    double min_val = 0;
    int64_t num_remaining = 0;
    const int64_t sink = augmenting_path(c, m, row, w, min_val, num_remaining);
    if (sink < 0)
      throw std::invalid_argument("linear_sum_assignment: cost matrix is infeasible (no finite assignment)");
    // Dual update over the visited columns and the rows they were assigned to.
    w.u[row] += min_val;
    for (int64_t k = num_remaining; k < m; ++k) {
      const int64_t j = w.remaining[k];
      const double delta = min_val - w.dist[j];
      if (j != sink) w.u[w.row4col[j]] += delta;
      w.v[j] -= delta;
    }
    // Augment along the path back to `row`.
    for (int64_t j = sink;;) {
      const int64_t i = w.path[j];
      w.row4col[j] = i;
      std::swap(w.col4row[i], j);
      if (i == row) break;
    }
  }
}

template <typename T>
Assignment solve(const T* cost, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("linear_sum_assignment: negative matrix size");
  if (rows == 0 || cols == 0) return {};
  if (cost == nullptr) throw std::invalid_argument("linear_sum_assignment: null cost matrix");
  check_finite(cost, rows, cols);

  // A tall matrix is solved transposed, so the search always runs over the longer side.
  const bool transpose = cols < rows;
  Workspace& w = workspace();
  const double* c = nullptr;
  if constexpr (std::is_same_v<T, double>) c = cost;
  if (transpose || c == nullptr) {
    w.cost.resize(static_cast<size_t>(rows * cols));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        w.cost[transpose ? j * rows + i : i * cols + j] = static_cast<double>(cost[i * cols + j]);
    c = w.cost.data();
  }
  const int64_t n = transpose ? cols : rows, m = transpose ? rows : cols;
  solve_wide(c, n, m, w);

  Assignment a;
  a.row_ind.reserve(n);
  a.col_ind.reserve(n);
  if (!transpose) {
    for (int64_t i = 0; i < n; ++i) {
      a.row_ind.push_back(i);
      a.col_ind.push_back(w.col4row[i]);
    }
  } else {  // solved columns are original rows: scanning them in order gives row_ind ascending
    for (int64_t j = 0; j < m; ++j) {
      if (w.row4col[j] < 0) continue;
      a.row_ind.push_back(j);
      a.col_ind.push_back(w.row4col[j]);
    }
  }
  return a;
}

}  // namespace

Assignment linear_sum_assignment(const double* cost, int64_t rows, int64_t cols) { return solve(cost, rows, cols); }

Assignment linear_sum_assignment(const float* cost, int64_t rows, int64_t cols) { return solve(cost, rows, cols); }

}  // namespace detr::models
