// linear_sum_assignment against scipy's answers (committed golden data, plus the optional larger set),
// textbook cases, error contract and brute force.
#include "models/linear_sum_assignment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/fixtures.h"

namespace {

using detr::models::Assignment;
using detr::models::linear_sum_assignment;
using Matrix = std::vector<double>;  // row-major

double total_cost(const Matrix& cost, int64_t cols, const Assignment& a) {
  double t = 0;
  for (size_t k = 0; k < a.row_ind.size(); ++k) t += cost[a.row_ind[k] * cols + a.col_ind[k]];
  return t;
}

// min(rows, cols) pairs, row_ind strictly ascending, rows and columns in range and used at most once.
void expect_valid(const Assignment& a, int64_t rows, int64_t cols) {
  ASSERT_EQ(a.row_ind.size(), static_cast<size_t>(std::min(rows, cols)));
  ASSERT_EQ(a.col_ind.size(), a.row_ind.size());
  std::vector<bool> col_used(cols, false);
  for (size_t k = 0; k < a.row_ind.size(); ++k) {
    ASSERT_GE(a.row_ind[k], 0);
    ASSERT_LT(a.row_ind[k], rows);
    if (k > 0) {
      ASSERT_LT(a.row_ind[k - 1], a.row_ind[k]) << "row_ind not ascending at " << k;
    }
    ASSERT_GE(a.col_ind[k], 0);
    ASSERT_LT(a.col_ind[k], cols);
    ASSERT_FALSE(col_used[a.col_ind[k]]) << "column " << a.col_ind[k] << " used twice";
    col_used[a.col_ind[k]] = true;
  }
}

// Exhaustive minimum over all assignments (as col_of_row for rows <= cols; transposes otherwise).
Assignment brute_force(const Matrix& cost, int64_t rows, int64_t cols) {
  const bool transpose = rows > cols;
  const int64_t n = transpose ? cols : rows, m = transpose ? rows : cols;
  auto at = [&](int64_t i, int64_t j) { return transpose ? cost[j * cols + i] : cost[i * cols + j]; };
  std::vector<int64_t> cur(n), best(n);
  std::vector<bool> used(m, false);
  double best_total = std::numeric_limits<double>::infinity();
  auto dfs = [&](auto&& self, int64_t i, double acc) -> void {
    if (i == n) {
      if (acc < best_total) best_total = acc, best = cur;
      return;
    }
    for (int64_t j = 0; j < m; ++j) {
      if (used[j]) continue;
      used[j] = true, cur[i] = j;
      self(self, i + 1, acc + at(i, j));
      used[j] = false;
    }
  };
  dfs(dfs, 0, 0.0);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = 0; i < n; ++i) pairs.emplace_back(transpose ? best[i] : i, transpose ? i : best[i]);
  std::sort(pairs.begin(), pairs.end());
  Assignment a;
  for (auto [r, c] : pairs) a.row_ind.push_back(r), a.col_ind.push_back(c);
  return a;
}

std::string error_of(const Matrix& cost, int64_t rows, int64_t cols) {
  try {
    linear_sum_assignment(cost.data(), rows, cols);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// Every case of a scipy golden file (lsap_cases.json) gives scipy's indices (its total where the
// costs have ties); prints how many indices were identical and the largest deviation of the totals.
void expect_scipy_cases(const std::filesystem::path& path) {
  std::ifstream in(path);
  const auto doc = nlohmann::json::parse(in);
  const auto& cases = doc.at("cases");
  ASSERT_FALSE(cases.empty());

  double max_abs_dev = 0, max_rel_dev = 0;
  int exact = 0, ties = 0, ties_identical = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& c = cases[k];
    const int64_t rows = c.at("rows"), cols = c.at("cols");
    const bool has_ties = c.at("ties");
    const auto cost = c.at("cost").get<Matrix>();
    const auto row_ind = c.at("row_ind").get<std::vector<int64_t>>();
    const auto col_ind = c.at("col_ind").get<std::vector<int64_t>>();
    const double expected = c.at("total");
    SCOPED_TRACE("case " + std::to_string(k) + " (" + std::to_string(rows) + "x" + std::to_string(cols) +
                 (has_ties ? ", ties)" : ")"));
    ASSERT_EQ(cost.size(), static_cast<size_t>(rows * cols));

    const Assignment a = linear_sum_assignment(cost.data(), rows, cols);
    expect_valid(a, rows, cols);
    const bool identical = a.row_ind == row_ind && a.col_ind == col_ind;
    if (has_ties) {
      ++ties;
      ties_identical += identical;
    } else {
      EXPECT_EQ(a.row_ind, row_ind);
      EXPECT_EQ(a.col_ind, col_ind);
      exact += identical;
    }
    const double dev = std::abs(total_cost(cost, cols, a) - expected);
    const double rel = dev / std::max(1.0, std::abs(expected));
    EXPECT_LE(rel, 1e-9) << "total " << total_cost(cost, cols, a) << " vs scipy " << expected;
    max_abs_dev = std::max(max_abs_dev, dev);
    max_rel_dev = std::max(max_rel_dev, rel);
  }
  std::cout << "[lsap] " << path.string() << ": " << cases.size() << " scipy cases: " << exact << "/"
            << cases.size() - ties << " tie-free cases with identical indices, " << ties_identical << "/" << ties
            << " tie cases with identical indices\n"
            << "[lsap] max |total - scipy total| = " << max_abs_dev << " (relative " << max_rel_dev << ")\n";
}

}  // namespace

// The cases committed in tests/data (tests/reference/make_lsap.py): always there.
TEST(LinearSumAssignment, MatchesScipyOnCommittedCases) {
  const auto path = detr::testing::data_dir() / "lsap" / "lsap_cases.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << "committed golden data missing: " << path;
  expect_scipy_cases(path);
}

// The larger optional set (DETR_FIXTURES or ../shared/fixtures): skipped when absent.
TEST(LinearSumAssignmentOptionalFixtures, MatchesScipyOnFixtureCases) {
  const auto path = detr::testing::fixtures_dir() / "lsap" / "lsap_cases.json";
  DETR_REQUIRE_FIXTURE(path);
  expect_scipy_cases(path);
}

TEST(LinearSumAssignment, WikipediaExample) {
  // Hungarian-algorithm article: workers x jobs, unique optimum 8 + 3 + 4 = 15.
  const Matrix cost = {8, 4, 7, 5, 2, 3, 9, 4, 8};
  const Assignment a = linear_sum_assignment(cost.data(), 3, 3);
  EXPECT_EQ(a.row_ind, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(a.col_ind, (std::vector<int64_t>{0, 2, 1}));
  EXPECT_DOUBLE_EQ(total_cost(cost, 3, a), 15.0);
}

TEST(LinearSumAssignment, ScipyDocstringExample) {
  const Matrix cost = {4, 1, 3, 2, 0, 5, 3, 2, 2};
  const Assignment a = linear_sum_assignment(cost.data(), 3, 3);
  EXPECT_EQ(a.row_ind, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(a.col_ind, (std::vector<int64_t>{1, 0, 2}));
  EXPECT_DOUBLE_EQ(total_cost(cost, 3, a), 5.0);
}

TEST(LinearSumAssignment, ConstantMatrixGivesIdentity) {
  // scipy (gh-11602): a constant cost matrix is assigned along the diagonal, in every shape.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4, 4}, {3, 5}, {5, 3}}) {
    const Matrix cost(rows * cols, 1.0);
    const Assignment a = linear_sum_assignment(cost.data(), rows, cols);
    std::vector<int64_t> diag(std::min(rows, cols));
    std::iota(diag.begin(), diag.end(), 0);
    EXPECT_EQ(a.row_ind, diag) << rows << "x" << cols;
    EXPECT_EQ(a.col_ind, diag) << rows << "x" << cols;
  }
}

TEST(LinearSumAssignment, EmptyRowsOrCols) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{0, 0}, {0, 5}, {5, 0}}) {
    const Matrix cost;
    const Assignment a = linear_sum_assignment(cost.data(), rows, cols);
    EXPECT_TRUE(a.row_ind.empty());
    EXPECT_TRUE(a.col_ind.empty());
  }
  EXPECT_TRUE(linear_sum_assignment(static_cast<const double*>(nullptr), 0, 3).row_ind.empty());
  EXPECT_TRUE(linear_sum_assignment(static_cast<const float*>(nullptr), 3, 0).row_ind.empty());
}

TEST(LinearSumAssignment, RectangularWide) {
  // 2 rows, 4 columns: row 0 -> col 3 (1), row 1 -> col 1 (2); columns 0 and 2 stay unused.
  const Matrix cost = {9, 5, 7, 1, 8, 2, 6, 3};
  const Assignment a = linear_sum_assignment(cost.data(), 2, 4);
  EXPECT_EQ(a.row_ind, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(a.col_ind, (std::vector<int64_t>{3, 1}));
  EXPECT_DOUBLE_EQ(total_cost(cost, 4, a), 3.0);
}

TEST(LinearSumAssignment, RectangularTall) {
  // The transpose of the wide case: rows 1 and 3 are matched, reported in ascending row order.
  const Matrix cost = {9, 8, 5, 2, 7, 6, 1, 3};
  const Assignment a = linear_sum_assignment(cost.data(), 4, 2);
  EXPECT_EQ(a.row_ind, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(a.col_ind, (std::vector<int64_t>{1, 0}));
  EXPECT_DOUBLE_EQ(total_cost(cost, 2, a), 3.0);
}

TEST(LinearSumAssignment, NegativeAndOffsetCostsKeepTheAssignment) {
  // Adding a constant to a row or a column changes every assignment's total equally.
  const Matrix cost = {8, 4, 7, 5, 2, 3, 9, 4, 8};
  Matrix shifted = cost;
  for (int j = 0; j < 3; ++j) shifted[3 + j] -= 1e6;        // row 1
  for (int i = 0; i < 3; ++i) shifted[i * 3 + 2] += -37.5;  // col 2
  EXPECT_EQ(linear_sum_assignment(shifted.data(), 3, 3).col_ind, linear_sum_assignment(cost.data(), 3, 3).col_ind);
}

TEST(LinearSumAssignment, FloatOverloadMatchesDouble) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-3.f, 3.f);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{100, 20}, {7, 30}, {12, 12}}) {
    std::vector<float> cost_f(rows * cols);
    for (auto& x : cost_f) x = dist(rng);
    const Matrix cost_d(cost_f.begin(), cost_f.end());
    const Assignment af = linear_sum_assignment(cost_f.data(), rows, cols);
    const Assignment ad = linear_sum_assignment(cost_d.data(), rows, cols);
    EXPECT_EQ(af.row_ind, ad.row_ind);
    EXPECT_EQ(af.col_ind, ad.col_ind);
  }
}

TEST(LinearSumAssignment, NonFiniteEntriesThrowWithPosition) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Matrix cost(4 * 8, 1.0);
  cost[3 * 8 + 7] = nan;
  EXPECT_EQ(error_of(cost, 4, 8), "linear_sum_assignment: cost[3][7] is nan");
  cost[1 * 8 + 2] = inf;  // now the first non-finite entry
  EXPECT_EQ(error_of(cost, 4, 8), "linear_sum_assignment: cost[1][2] is inf");
  cost[0 * 8 + 5] = -inf;
  EXPECT_EQ(error_of(cost, 4, 8), "linear_sum_assignment: cost[0][5] is -inf");

  // Tall matrices are solved transposed; the position is still reported in the caller's coordinates.
  Matrix tall(8 * 3, 0.5);
  tall[6 * 3 + 1] = nan;
  EXPECT_EQ(error_of(tall, 8, 3), "linear_sum_assignment: cost[6][1] is nan");

  std::vector<float> cost_f(2 * 3, 1.f);
  cost_f[1 * 3 + 0] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(linear_sum_assignment(cost_f.data(), 2, 3), std::invalid_argument);
}

TEST(LinearSumAssignment, MatchesBruteForceOnRandomSmallMatrices) {
  std::mt19937 rng(20240611);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::uniform_int_distribution<int> small_int(0, 3);
  int checked = 0;
  double max_dev = 0;
  for (int64_t rows = 1; rows <= 6; ++rows) {
    for (int64_t cols = 1; cols <= 8; ++cols) {
      for (int rep = 0; rep < 4; ++rep) {
        for (bool integer : {false, true}) {
          for (bool tall : {false, true}) {  // also the transposed shape, up to 8x6
            const int64_t r = tall ? cols : rows, c = tall ? rows : cols;
            Matrix cost(r * c);
            for (auto& x : cost) x = integer ? small_int(rng) : normal(rng);
            SCOPED_TRACE(std::to_string(r) + "x" + std::to_string(c) + (integer ? " integer" : " real"));
            const Assignment a = linear_sum_assignment(cost.data(), r, c);
            const Assignment b = brute_force(cost, r, c);
            expect_valid(a, r, c);
            const double dev = std::abs(total_cost(cost, c, a) - total_cost(cost, c, b));
            EXPECT_LE(dev, 1e-9 * std::max(1.0, std::abs(total_cost(cost, c, b))));
            if (!integer) {  // real costs: the optimum is unique (almost surely)
              EXPECT_EQ(a.row_ind, b.row_ind);
              EXPECT_EQ(a.col_ind, b.col_ind);
            }
            max_dev = std::max(max_dev, dev);
            ++checked;
          }
        }
      }
    }
  }
  std::cout << "[lsap] brute force: " << checked << " random matrices, max |total - optimum| = " << max_dev << "\n";
}

TEST(LinearSumAssignment, RowIndAscending) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{100, 7}, {100, 50}, {40, 100}, {300, 120}, {1, 9}}) {
    Matrix cost(rows * cols);
    for (auto& x : cost) x = dist(rng);
    const Assignment a = linear_sum_assignment(cost.data(), rows, cols);
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    expect_valid(a, rows, cols);
    EXPECT_TRUE(std::is_sorted(a.row_ind.begin(), a.row_ind.end()));
  }
}
