"""Interrogation utilities (`rnn_weightspace.theory`): exact costs on families with known answers, Prop 3.1-3.3."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.lstm import lstm_forward, lstm_step
from rnn_weightspace.theory import (FunctionFamily, Interrogator, best_accuracy, family_lstm, indicator_family,
                                    min_adaptive_depth, min_separating_set, pointer_chasing_bounds, pointer_chasing_family,
                                    train_interrogator)


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


def random_families(seed: int, count: int):
    "Random tables of distinct rows (2-7 functions, 2-5 inputs, 2-3 answer values): `(V, FunctionFamily)` pairs."
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n, m, k = rng.integers(2, 8), rng.integers(2, 6), rng.integers(2, 4)
        V = rng.integers(0, k, size=(n, m))
        if len({r.tobytes() for r in V}) == n: yield V, FunctionFamily(V)


def test_adaptive_depth_matches_brute_force():
    for V, f in random_families(0, 60):
        n, m = V.shape
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


def brute_best_accuracy(V: np.ndarray, L: int, interactive: bool) -> float:
    "Best number of answer patterns within L queries, by plain recursion (interactive) or enumeration (fixed sets)."
    n, m = V.shape
    if not interactive:
        return max(len({r.tobytes() for r in V[:, list(c)]}) for c in itertools.combinations(range(m), min(L, m))) / n
    def g(S, L):
        if L == 0 or len(S) == 1: return 1
        best = 1
        for c in range(m):
            groups = {}
            for i in S: groups.setdefault(V[i, c], []).append(i)
            if len(groups) > 1: best = max(best, sum(g(tuple(v), L - 1) for v in groups.values()))
        return best
    return g(tuple(range(n)), L) / n


def test_best_accuracy_matches_brute_force():
    for V, f in random_families(1, 40):
        n, m = V.shape
        for L in range(0, m + 1):
            a_int, a_fix = best_accuracy(f, L, True), best_accuracy(f, L, False)
            assert a_int == (brute_best_accuracy(V, L, True), "exact") and a_fix == (brute_best_accuracy(V, L, False), "exact")
            assert a_fix[0] <= a_int[0]                                           # interaction never hurts
            assert best_accuracy(f, L, True, "greedy")[0] <= a_int[0] and best_accuracy(f, L, False, "greedy")[0] <= a_fix[0]
        assert best_accuracy(f, min_adaptive_depth(f)[0], True)[0] == 1.0        # consistent with the depth
        assert best_accuracy(f, min_separating_set(f)[0], False)[0] == 1.0


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_best_accuracy_pointer_chasing(k):
    f = pointer_chasing_family(k)
    for L in (0, 1, k - 1, k, 2 ** (k - 1), 2 ** k - 1):
        assert best_accuracy(f, L, True)[0] == 2 ** min(L, k) / 2 ** k
        acc, how = best_accuracy(f, L, False)
        assert acc == (L + 1) / 2 ** k or (how == "greedy lower bound" and acc <= (L + 1) / 2 ** k)


def test_family_lstm_answers_the_table():
    for f in (pointer_chasing_family(3), indicator_family(5), FunctionFamily(np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1]]))):
        w = family_lstm(f)
        assert w.batch_shape == (f.n,) and w.spec.input_size == f.n_inputs
        eye = torch.eye(f.n_inputs)
        y, _ = lstm_step(w, eye)                                                  # every query at once, fresh state
        assert (y.argmax(-1).numpy() == f.values).all()
        seq = eye[torch.randint(0, f.n_inputs, (20,), generator=torch.Generator().manual_seed(0))]   # [20, m], repeats
        y, _ = lstm_forward(w, seq[None])                                         # memoryless along a sequence
        assert (y[:, 0].argmax(-1).numpy() == f.values[:, seq.argmax(-1).numpy()]).all()


def test_interrogator_shapes_and_errors():
    net = Interrogator(n_inputs=7, n_answers=2, n_functions=8, budget=3, interactive=True)
    w = family_lstm(pointer_chasing_family(3))
    logits, logp, ent, q = net(lambda x, s: lstm_step(w, x, s), 8)
    assert logits.shape == (8, 4, 8) and logp.shape == ent.shape == q.shape == (8, 3)
    assert all(len(set(r)) == 3 for r in q.tolist())                             # no repeated question
    with pytest.raises(RNNWSError, match="budget"): Interrogator(7, 2, 8, 8, True)
    with pytest.raises(RNNWSError, match="budget"): best_accuracy(pointer_chasing_family(2), -1, True)


def test_train_interrogator_small_family():
    f = pointer_chasing_family(2)
    inter = train_interrogator(f, 2, interactive=True, steps=400, seed=0)
    fixed = train_interrogator(f, 2, interactive=False, steps=400, seed=0)
    assert inter.accuracy == 1.0 and fixed.accuracy <= best_accuracy(f, 2, False)[0] == 0.75
    assert inter.queries[:, 0].tolist() == [0, 0, 0, 0]                          # always asks the empty prefix first
