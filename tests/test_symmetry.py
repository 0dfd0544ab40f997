"""Properties of the hidden-unit symmetries (`rnn_weightspace.symmetry`): the transformed models compute the same
function, every part of a transformation is needed, inverses are exact, random elements are per model and seeded."""
import itertools

import pytest
import torch

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights, lstm_forward
from rnn_weightspace.symmetry import PARTS, HiddenSymmetry, augment, flip_signs, permute_hidden

CONFIGS = [  # (num_layers, hidden_size, input_size, output_size, batch_shape)
    (L, H, i, o, B)
    for L, H, (i, o), B in itertools.product((1, 2, 3), (4, 32), ((3, 2), (6, 6)), ((), (5,), (2, 3)))
]
IDS = [f"L{L}-H{H}-in{i}-out{o}-B{'x'.join(map(str, B)) or '0'}" for L, H, i, o, B in CONFIGS]


def make(L, H, i, o, B, seed=0):
    "Random models with weights larger than at init (a more nonlinear regime) and inputs `[*B, 8, 8, i]`."
    g = torch.Generator().manual_seed(seed)
    w = LSTMWeights.init(LSTMSpec(i, H, L, o), B, generator=g)
    w = w.map(lambda t: t + 0.6 * torch.randn(t.shape, generator=g))
    x = torch.randn(*B, 8, 8, i, generator=g)
    return w, x, g


def derangement(B, H, g):
    "A random H-cycle per model: a permutation without fixed points, so every unit moves."
    sigma = torch.rand(*B, H, generator=g).argsort(-1)
    return torch.empty_like(sigma).scatter_(-1, sigma, sigma.roll(-1, -1))


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("kind", ["perm", "sign", "both"])
def test_function_unchanged(cfg, kind):
    w, x, g = make(*cfg)
    sym = HiddenSymmetry.random(w.spec, w.batch_shape, generator=g, signs=kind != "perm")
    if kind == "sign": sym = HiddenSymmetry(HiddenSymmetry.identity(w.spec, w.batch_shape).perms, sym.signs)
    before = w.flatten().clone()
    y, state = lstm_forward(w, x)
    y2, state2 = lstm_forward(sym.apply(w), x)
    assert max_diff(y, y2) < 1e-5
    for a, b in zip(state2, sym.apply_state(state)): assert max_diff(a, b) < 1e-5   # states are equivariant
    assert torch.equal(w.flatten(), before)                                       # the input is untouched


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_each_part_is_needed(cfg):
    L, H, _, _, B = cfg
    w, x, g = make(*cfg)
    y = lstm_forward(w, x)[0]
    perm, signs = derangement(B, H, g), -torch.ones(*B, H)
    for layer in range(L):
        assert max_diff(lstm_forward(permute_hidden(w, layer, perm), x)[0], y) < 1e-5
        assert max_diff(lstm_forward(flip_signs(w, layer, signs), x)[0], y) < 1e-5
        for part in PARTS:
            rest = [p for p in PARTS if p != part]
            assert max_diff(lstm_forward(permute_hidden(w, layer, perm, rest), x)[0], y) > 1e-3, (layer, part, "perm")
            assert max_diff(lstm_forward(flip_signs(w, layer, signs, rest), x)[0], y) > 1e-3, (layer, part, "sign")


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_inverse_and_identity_exact(cfg):
    w, x, g = make(*cfg)
    flat = w.flatten()
    sym = HiddenSymmetry.random(w.spec, w.batch_shape, generator=g)
    assert torch.equal(sym.inverse().apply(sym.apply(w)).flatten(), flat)
    assert torch.equal(sym.apply(sym.inverse().apply(w)).flatten(), flat)
    assert torch.equal(HiddenSymmetry.identity(w.spec, w.batch_shape).apply(w).flatten(), flat)
    assert torch.equal(HiddenSymmetry.identity(w.spec).apply(w).flatten(), flat)
    for layer in range(w.num_layers):
        p = sym.perms[layer]
        assert torch.equal(permute_hidden(permute_hidden(w, layer, p), layer, p.argsort(-1)).flatten(), flat)
        s = sym.signs[layer]
        assert torch.equal(flip_signs(flip_signs(w, layer, s), layer, s).flatten(), flat)
    # the inverse is a valid element, and applying g then g^-1 to the states is the identity too
    sym.inverse().validate()
    h = torch.randn(*w.batch_shape, w.num_layers, 2, w.hidden_size, generator=g)
    assert torch.equal(sym.inverse().apply_state(sym.apply_state((h, -h)))[0], h)


@pytest.mark.parametrize("B", [(), (5,), (2, 3)])
def test_nonzero_initial_state_transforms_with_the_model(B):
    w, x, g = make(2, 8, 3, 2, B)
    sym = HiddenSymmetry.random(w.spec, B, generator=g)
    state = tuple(torch.randn(*B, 2, x.shape[-3], 8, generator=g) for _ in range(2))
    y = lstm_forward(w, x, state)[0]
    assert max_diff(lstm_forward(sym.apply(w), x, sym.apply_state(state))[0], y) < 1e-5
    assert max_diff(lstm_forward(sym.apply(w), x, state)[0], y) > 1e-3   # the untransformed state does not fit


def test_random_is_per_model_per_layer_and_seeded():
    spec = LSTMSpec(6, 32, 3, 6)
    sym = HiddenSymmetry.random(spec, (4, 5), generator=torch.Generator().manual_seed(0))
    assert sym.batch_shape == (4, 5) and sym.num_layers == 3 and sym.hidden_size == 32
    sym.validate()
    for p in sym.perms:
        flat = p.reshape(20, 32)
        assert len({tuple(r.tolist()) for r in flat}) == 20                   # 20 models, 20 different permutations
    assert not torch.equal(sym.perms[0], sym.perms[1])
    s = torch.stack(sym.signs)
    assert set(s.unique().tolist()) == {-1.0, 1.0} and abs(s.mean().item()) < 0.1
    same = HiddenSymmetry.random(spec, (4, 5), generator=torch.Generator().manual_seed(0))
    other = HiddenSymmetry.random(spec, (4, 5), generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(sym.perms + sym.signs, same.perms + same.signs))
    assert not torch.equal(sym.perms[0], other.perms[0])
    assert all(torch.equal(t, torch.ones(4, 5, 32))
               for t in HiddenSymmetry.random(spec, (4, 5), signs=False).signs)
    w = LSTMWeights.init(spec, (4, 5), generator=torch.Generator().manual_seed(0))
    a1, a2 = (augment(w, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a1.flatten(), a2.flatten())
    assert not torch.equal(augment(w, torch.Generator().manual_seed(8)).flatten(), a1.flatten())


def test_broadcast_element_matches_expanded():
    w, x, g = make(2, 8, 3, 2, (2, 3))
    perm, signs = torch.randperm(8, generator=g), torch.randint(0, 2, (8,), generator=g) * 2 - 1
    for layer in range(2):
        assert torch.equal(permute_hidden(w, layer, perm).flatten(),
                           permute_hidden(w, layer, perm.expand(2, 3, 8)).flatten())
        assert torch.equal(flip_signs(w, layer, signs).flatten(), flip_signs(w, layer, signs.expand(2, 3, 8)).flatten())
        assert torch.equal(permute_hidden(w, layer, perm[None, None]).flatten(),
                           permute_hidden(w, layer, perm.expand(2, 3, 8)).flatten())


def test_gradients_flow_and_are_invariant():
    w, x, g = make(2, 8, 3, 2, (4,))
    wg = w.clone().requires_grad_()
    lstm_forward(augment(wg, torch.Generator().manual_seed(0)), x)[0].square().sum().backward()
    wr = w.clone().requires_grad_()
    lstm_forward(wr, x)[0].square().sum().backward()
    for a, b in zip(wg.tensors(), wr.tensors()):
        assert a.grad is not None and a.grad.abs().sum() > 0
        assert max_diff(a.grad, b.grad) < 1e-4   # the loss is invariant, so its gradient is too


def test_double_precision_and_errors():
    w, x, g = make(2, 8, 3, 2, (3,))
    wd = w.to(torch.float64)
    sym = HiddenSymmetry.random(w.spec, (3,), generator=g)
    assert sym.apply(wd).dtype == torch.float64
    assert max_diff(lstm_forward(sym.apply(wd), x.double())[0], lstm_forward(wd, x.double())[0]) < 1e-12
    perm = torch.randperm(8, generator=g)
    with pytest.raises(RNNWSError, match="not a permutation"): permute_hidden(w, 0, torch.zeros(8, dtype=torch.long))
    with pytest.raises(RNNWSError, match="integer"): permute_hidden(w, 0, perm.float())
    with pytest.raises(RNNWSError, match="shape"): permute_hidden(w, 0, perm[:7])
    with pytest.raises(RNNWSError, match="shape"): permute_hidden(w, 0, perm.expand(2, 8))
    with pytest.raises(RNNWSError, match="out of range"): permute_hidden(w, 2, perm)
    with pytest.raises(RNNWSError, match="unknown parts"): flip_signs(w, 0, torch.ones(8), parts=["cols"])
    with pytest.raises(RNNWSError, match=r"\+1 and -1"): flip_signs(w, 0, torch.zeros(8))
    with pytest.raises(RNNWSError, match="does not fit"): sym.apply(LSTMWeights.init(LSTMSpec(3, 8, 1, 2), (3,)))
    with pytest.raises(RNNWSError, match="perms\\[1\\]"):
        HiddenSymmetry([sym.perms[0], sym.perms[0].flip(0)[:, :1].expand(3, 8)], sym.signs).apply(w, check=True)
