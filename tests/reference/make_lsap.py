"""Golden cases for linear_sum_assignment, solved by scipy.optimize.linear_sum_assignment.

Writes lsap_cases.json (format: tests/reference/README.md, "lsap/"): real-valued costs, whose optimum
is unique, and small-integer costs (`ties: true`), where another optimal assignment with the same
total is equally correct. Shapes: square, wide, tall, the 100 x targets of DETR's matcher, one row or
column, and empty (0x0, 0xN, Nx0).

Usage: /usr/bin/python3 tests/reference/make_lsap.py [OUT_DIR]   (default tests/data/lsap)
"""
import sys

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

from common import output_dir, write_json

SEED = 20240611

# (rows, cols) of the real-valued cases; each draws its own scale and offset.
REAL_SHAPES = [(1, 1), (3, 3), (2, 5), (5, 2), (1, 6), (6, 1), (0, 0), (0, 4), (4, 0),
               (10, 10), (25, 25), (12, 30), (30, 12), (100, 7)]
# (rows, cols) of the integer cases (costs 0..3, many ties).
TIE_SHAPES = [(1, 1), (3, 3), (2, 5), (5, 2), (10, 10), (25, 25), (40, 6), (6, 40), (100, 3)]


def real_cost(rng, rows, cols):
    """Normal costs with a per-case scale and offset (negative entries included)."""
    scale = rng.choice([0.5, 2.0, 3.0])
    return rng.normal(0.0, scale, size=(rows, cols)) + rng.uniform(-1.0, 1.0)


def matcher_like_cost(rng, rows, cols):
    """A cost shaped like DETR's matcher: 5*L1 - prob - 2*GIoU-ish terms, computed in float32."""
    l1 = rng.uniform(0.0, 2.0, size=(rows, cols))
    prob = rng.dirichlet(np.ones(cols + 1), size=rows)[:, :cols]
    giou = rng.uniform(-1.0, 1.0, size=(rows, cols))
    return (5.0 * l1 - prob - 2.0 * giou).astype(np.float32).astype(np.float64)


def integer_cost(rng, rows, cols):
    """Costs in {0, 1, 2, 3}: many optimal assignments."""
    return rng.integers(0, 4, size=(rows, cols)).astype(np.float64)


def check_unique(cost, row_ind, col_ind):
    """Fails unless every other assignment costs more: forbidding any chosen pair raises the total."""
    best = cost[row_ind, col_ind].sum()
    big = np.abs(cost).sum() + 1.0
    for r, c in zip(row_ind, col_ind):
        other = cost.copy()
        other[r, c] = big
        rows, cols = linear_sum_assignment(other)
        if not other[rows, cols].sum() > best:
            raise AssertionError(f"{cost.shape}: the optimum is not unique; mark the case ties")


def solve(cost, ties):
    """One case: the matrix and scipy's answer (checked unique unless `ties`)."""
    row_ind, col_ind = linear_sum_assignment(cost)
    if not ties:
        check_unique(cost, row_ind, col_ind)
    return {
        "rows": int(cost.shape[0]),
        "cols": int(cost.shape[1]),
        "ties": ties,
        "cost": [float(x) for x in cost.reshape(-1)],
        "row_ind": [int(i) for i in row_ind],
        "col_ind": [int(j) for j in col_ind],
        "total": float(cost[row_ind, col_ind].sum()),
    }


def make_cases(rng):
    """All cases, in a fixed order."""
    cases = [solve(real_cost(rng, r, c), False) for r, c in REAL_SHAPES]
    cases.append(solve(matcher_like_cost(rng, 100, 9), False))
    cases.append(solve(matcher_like_cost(rng, 9, 100), False))
    cases += [solve(integer_cost(rng, r, c), True) for r, c in TIE_SHAPES]
    cases.append(solve(np.ones((5, 8)), True))  # constant: scipy takes the diagonal
    cases.append(solve(np.zeros((0, 3)), False))
    return cases


def main():
    out = output_dir(sys.argv, "lsap")
    cases = make_cases(np.random.default_rng(SEED))
    doc = {"solver": "scipy.optimize.linear_sum_assignment", "scipy": scipy.__version__, "cases": cases}
    write_json(out / "lsap_cases.json", doc)
    print(f"{len(cases)} cases, {sum(c['ties'] for c in cases)} with ties")


if __name__ == "__main__":
    main()
