"""Interrogation utilities (`rnn_weightspace.theory`): exact costs on families with known answers, Prop 3.1-3.3."""
import itertools

import numpy as np
import pytest

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.theory import (FunctionFamily, indicator_family, min_adaptive_depth, min_separating_set,
                                    pointer_chasing_bounds, pointer_chasing_family)


def brute_depth(V: np.ndarray) -> int:
    "Minimum decision-tree depth by plain recursion over candidate tuples (no tricks), for cross-checking."
    def d(S):
        if len(S) == 1: return 0
        best = None
        for c in range(V.shape[1]):
            groups = {}
            for i in S: groups.setdefault(V[i, c], []).append(i)
            if len(groups) > 1:
                v = 1 + max(d(tuple(g)) for g in groups.values())
                best = v if best is None else min(best, v)
        return best
    return d(tuple(range(len(V))))


def test_adaptive_depth_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, m, k = rng.integers(2, 8), rng.integers(2, 6), rng.integers(2, 4)
        V = rng.integers(0, k, size=(n, m))
        if len({r.tobytes() for r in V}) < n: continue
        f = FunctionFamily(V)
        assert min_adaptive_depth(f)[0] == brute_depth(V)
        sep = min_separating_set(f)
        assert sep[1] == "exact" and len(sep[2]) == sep[0]
        assert len({r.tobytes() for r in V[:, list(sep[2])]}) == n                      # the set found separates
        assert all(len({r.tobytes() for r in V[:, list(c)]}) < n for c in itertools.combinations(range(m), sep[0] - 1))
        assert min_adaptive_depth(f)[0] <= sep[0] <= n - 1 and min_separating_set(f, "greedy")[0] <= n - 1


@pytest.mark.parametrize("n", range(2, 9))
def test_indicator_family_is_the_worst_case(n):
    f = indicator_family(n)
    assert min_adaptive_depth(f)[0] == n - 1 and min_separating_set(f)[0] == n - 1


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_pointer_chasing_exact(k):
    f = pointer_chasing_family(k)
    assert f.n == 2 ** k and f.n_inputs == 2 ** k - 1
    b = pointer_chasing_bounds(k)
    assert min_adaptive_depth(f, "exact")[0] == b["interactive"] == k
    size, how, _ = min_separating_set(f, "exact")
    assert how == "exact" and b["non_interactive_lower"] <= size <= b["non_interactive_upper"]


def test_errors():
    with pytest.raises(RNNWSError, match="distinct"): FunctionFamily(np.array([[1, 2], [1, 2]]))
    with pytest.raises(RNNWSError, match="k must be"): pointer_chasing_family(0)
    with pytest.raises(RNNWSError, match="n_functions, n_inputs"): FunctionFamily(np.array([1, 2]))
