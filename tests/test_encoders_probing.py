"""Tests of the probing encoders (`nbs/25_encoders.probing.ipynb`): shapes, exact invariance to the hidden-unit
symmetries, determinism, gradient flow through the probed RNN, fused vs stepwise rollouts, black-box use, errors."""
import pytest
import torch
import torch.nn.functional as F

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.encoders.base import InputDomain, invariance_error, make_encoder
from rnn_weightspace.encoders.probing import (InteractiveLogProbProbingEncoder, InteractiveProbingEncoder, OutputReader,
                                              ProbeGenerator, ProbingEncoder, ResidualLSTM, StaticLogProbProbingEncoder,
                                              StaticProbingEncoder)
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights, lstm_step

ENCODERS = [StaticProbingEncoder, InteractiveProbingEncoder]   # the paper's
VARIANTS = [StaticLogProbProbingEncoder, InteractiveLogProbProbingEncoder]   # ours
CASES = {  # name: (spec, domain)
    "fl": (LSTMSpec(6, 32, 2, 6), InputDomain.tokens(6)),
    "mnist": (LSTMSpec(16, 32, 2, 10), InputDomain.continuous(16, -0.4242, 2.8215)),
    "1layer": (LSTMSpec(6, 8, 1, 6), InputDomain.tokens(6)),
    "3layer": (LSTMSpec(4, 8, 3, 5), InputDomain.continuous(4, -1.0, 1.0)),
}
SMALL = dict(hidden_size=16, num_layers=2, probe_hidden=16)  # a small encoder keeps the tests fast


def build(cls, case, seed=0, dtype=torch.float32, **kw):
    spec, domain = CASES[case]
    torch.manual_seed(seed)
    return cls(spec, domain, **{**SMALL, **kw}).to(dtype)


def weights(case, batch=(3,), seed=0, dtype=torch.float32):
    return LSTMWeights.init(CASES[case][0], batch, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def lstm_stepper(w):
    return lambda x, s: lstm_step(w, x, s)


@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("case", list(CASES))
def test_shapes_and_finite(cls, case):
    enc = build(cls, case)
    for batch in [(), (1,), (5,), (2, 3)]:
        z = enc(weights(case, batch))
        assert z.shape == (*batch, 16)
        assert torch.isfinite(z).all()
    assert enc.probe_length == (22 if CASES[case][1].kind == "tokens" else 50)


@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("case", list(CASES))
def test_exact_invariance(cls, case):
    enc = build(cls, case, dtype=torch.float64).eval()
    assert enc.permutation_invariant and enc.sign_invariant and not enc.needs_augmentation
    w = weights(case, (4,), dtype=torch.float64).map(lambda t: 3 * t)  # larger weights: less trivial functions
    g = torch.Generator().manual_seed(1)
    assert invariance_error(enc, w, generator=g) < 1e-10
    assert invariance_error(enc, w, permutations=False, signs=True, generator=g) < 1e-10
    assert invariance_error(enc, w, permutations=True, signs=True, generator=g) < 1e-10
    # ... while the embedding does see other weights
    w2 = weights(case, (4,), seed=5, dtype=torch.float64)
    assert (enc(w) - enc(w2)).abs().max() > 1e-6


@pytest.mark.parametrize("cls", ENCODERS)
def test_determinism(cls):
    w = weights("fl")
    z1, z2 = build(cls, "fl", seed=3)(w), build(cls, "fl", seed=3)(w)
    assert torch.equal(z1, z2)
    assert not torch.equal(z1, build(cls, "fl", seed=4)(w))


@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("case", ["fl", "mnist", "3layer"])
def test_gradients_reach_every_parameter(cls, case):
    enc = build(cls, case)
    w = weights(case, (3,)).requires_grad_()
    enc(w).square().sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # E_I's only path to the loss goes through the probed RNN, so its gradient shows that the RNN passes gradients on
    assert all(p.grad.abs().sum() > 0 for p in enc.probe_generator.parameters())
    assert all(t.grad is not None for t in w.tensors())  # and the models' weights get gradients too
    names = {n for n, _ in enc.named_parameters()}
    assert ("codes" in names) == (cls is StaticProbingEncoder)


@pytest.mark.parametrize("cls", ENCODERS)
def test_batch_of_one(cls):
    enc = build(cls, "mnist")
    w = weights("mnist", (4,))
    torch.testing.assert_close(enc(w[2]), enc(w)[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc(w[2:3])[0], enc(w[2]), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_static_fused_equals_stepwise(case):
    enc = build(StaticProbingEncoder, case, dtype=torch.float64)
    w = weights(case, (3,), dtype=torch.float64)
    torch.testing.assert_close(enc.encode(w), enc.interrogate(lstm_stepper(w), 3), atol=1e-12, rtol=1e-12)
    enc.float()
    w = w.to(torch.float32)
    torch.testing.assert_close(enc.encode(w), enc.interrogate(lstm_stepper(w), 3), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", ENCODERS)
def test_interrogate_equals_encode(cls):
    enc = build(cls, "fl", dtype=torch.float64, n_probes=3)
    w = weights("fl", (2, 2), dtype=torch.float64)
    wf = w.reshape(4)
    torch.testing.assert_close(enc.interrogate(lstm_stepper(wf), 4), enc(w).reshape(4, -1), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cls", ENCODERS)
def test_probe_returns_probes_and_answers(cls):
    enc = build(cls, "fl", n_probes=2, probe_length=7)
    w = weights("fl", (2, 3)).map(lambda t: 4 * t)
    z, x, y = enc.probe(w)
    assert z.shape == (2, 3, 16) and x.shape == (2, 3, 7, 2, 6) and y.shape == (2, 3, 7, 2, 6)
    torch.testing.assert_close(z, enc(w), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.sum(-1), torch.ones(2, 3, 7, 2))
    # the answers are the LSTMs' outputs on the probes
    ref, s = [], None
    for t in range(7):
        a, s = lstm_step(w, x[..., t, :, :], s)
        ref.append(a)
    torch.testing.assert_close(y, torch.stack(ref, -3), atol=1e-5, rtol=1e-5)
    # static probes are the same for every model; interactive ones agree at the first step only
    x = x.reshape(6, 7, 2, 6)
    same = (x - x[:1]).abs().amax(dim=(0, 2, 3))  # per step
    if cls is StaticProbingEncoder: assert same.max() == 0
    else: assert same[0] == 0 and same[1:].min() > 0


def test_probes_in_domain():
    enc = build(StaticProbingEncoder, "mnist")
    _, x, _ = enc.probe(weights("mnist", (2,)))
    assert x.min() >= -0.4242 and x.max() <= 2.8215
    enc = build(InteractiveProbingEncoder, "3layer")
    _, x, _ = enc.probe(weights("3layer", (2,)))
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("cls", ENCODERS)
def test_straight_through(cls):
    enc = build(cls, "fl", straight_through=True)
    w = weights("fl", (3,))
    _, x, _ = enc.probe(w)
    assert ((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all()  # exactly one-hot
    enc(w).square().sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(RNNWSError, match="token input domain"): build(cls, "mnist", straight_through=True)


def test_output_transform():
    "The paper's encoders read raw outputs (a shift of the logits is seen); the -logprob variants read log-probabilities."
    spec, domain = CASES["fl"]
    w = weights("fl", (3,), dtype=torch.float64)
    shifted = LSTMWeights(w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, w.weight_out, w.bias_out + 2.5)
    for cls, variant in zip(ENCODERS, VARIANTS):
        enc = build(cls, "fl", dtype=torch.float64)                  # released: "identity"
        assert enc.reader.output_transform == "identity" and (enc(w) - enc(shifted)).abs().max() > 1e-6
        enc = build(variant, "fl", dtype=torch.float64)              # log_softmax: a constant shift is invisible
        assert enc.reader.output_transform == "log_softmax"
        torch.testing.assert_close(enc(w), enc(shifted), atol=1e-10, rtol=1e-10)
        enc = build(cls, "fl", dtype=torch.float64, output_transform="log_softmax")   # or as an argument
        torch.testing.assert_close(enc(w), enc(shifted), atol=1e-10, rtol=1e-10)
    with pytest.raises(RNNWSError, match="output_transform"): build(StaticProbingEncoder, "fl", output_transform="softmax")


@pytest.mark.parametrize("cls", ENCODERS + VARIANTS)
def test_probe_box(cls):
    "Continuous probes lie in [0, 1] for the paper's encoders (as released), in the domain's box for the variants."
    enc = build(cls, "mnist")
    _, x, _ = enc.probe(weights("mnist", (2,)))
    lo, hi = (0.0, 1.0) if cls in ENCODERS else (-0.4242, 2.8215)
    assert x.min() >= lo and x.max() <= hi
    assert enc.probe_generator.probe_box == ("unit" if cls in ENCODERS else "domain")


@pytest.mark.parametrize("cls", ENCODERS)
def test_black_box_step(cls):
    "Any recurrent model given as a step function: a batch of vanilla tanh RNNs (state: a tensor)."
    M, H = 5, 12
    g = torch.Generator().manual_seed(0)
    Wx, Wh, V = torch.randn(M, H, 6, generator=g), torch.randn(M, H, H, generator=g) / H**0.5, torch.randn(M, 6, H, generator=g)
    def step(x, h):
        if h is None: h = x.new_zeros(M, x.shape[1], H)
        h = torch.tanh(x @ Wx.transpose(1, 2) + h @ Wh.transpose(1, 2))
        return h @ V.transpose(1, 2), h
    enc = build(cls, "fl", n_probes=2)
    z, x, y = enc.interrogate(step, M, return_probes=True)
    assert z.shape == (M, 16) and x.shape == (M, 22, 2, 6) and y.shape == (M, 22, 2, 6)
    z.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(RNNWSError, match="expected"): enc.interrogate(lambda x, s: (x[:, :1], s), M)


def test_foreign_dtype_probes():
    "A float32 encoder can interrogate float64 models: probes are sent in the models' dtype, answers come back."
    enc = build(InteractiveProbingEncoder, "fl")
    w = weights("fl", (3,), dtype=torch.float64)
    seen = []
    def step(x, s):
        seen.append(x.dtype)
        return lstm_step(w, x, s)
    z = enc.interrogate(step, 3, dtype=torch.float64)
    assert z.dtype == torch.float32 and set(seen) == {torch.float64}
    torch.testing.assert_close(z, enc(w), atol=1e-6, rtol=1e-6)  # encode follows the weights' dtype


def test_errors_and_registry():
    spec, domain = CASES["fl"]
    with pytest.raises(RNNWSError, match="InputDomain.tokens"): StaticProbingEncoder(spec)
    with pytest.raises(RNNWSError, match="make_encoder"): make_encoder("probe-static", spec)
    with pytest.raises(RNNWSError, match="input_size=6"): InteractiveProbingEncoder(spec, CASES["mnist"][1])
    with pytest.raises(RNNWSError, match="probe_length"): StaticProbingEncoder(spec, domain, probe_length=0)
    with pytest.raises(RNNWSError, match="was built for"): build(StaticProbingEncoder, "fl")(weights("mnist"))
    enc = make_encoder("probe-interactive", spec, domain=domain)
    assert type(enc) is InteractiveProbingEncoder and enc.name == "probe-interactive"
    assert type(make_encoder("probe-static", spec, size="tiny", domain=domain)) is StaticProbingEncoder


def test_sizes():
    for (spec, domain) in (CASES["fl"], CASES["mnist"]):
        for cls in ENCODERS:
            n = {s: cls.from_size(s, spec, domain).n_params for s in ProbingEncoder.sizes}
            assert 1.10e6 < n["paper"] < 1.20e6 and 50e3 < n["small"] < 150e3 and 5e3 < n["tiny"] < 20e3, (cls, n)
    # the authors' interactive_1 (FL) less their L+1 codes and 4 unused initial-state vectors
    assert InteractiveProbingEncoder.from_size("paper", *CASES["fl"]).n_params == 1_147_030 - 23 * 256 - 4 * 256


def test_building_blocks():
    agg = ResidualLSTM(8, 3).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    fused, _ = agg(x)
    state, ys = None, []
    for t in range(6):
        y, state = agg(x[:, t:t + 1], state)
        ys.append(y)
    torch.testing.assert_close(fused, torch.cat(ys, 1), atol=1e-12, rtol=1e-12)
    gen = ProbeGenerator(InputDomain.tokens(5), 8, 4, n_probes=3)
    assert gen(torch.randn(7, 8)).shape == (7, 3, 5)
    assert OutputReader(5, 8, 3)(torch.randn(7, 3, 5)).shape == (7, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", ENCODERS)
def test_cuda(cls):
    enc = build(cls, "fl")
    w = weights("fl", (2, 3))
    z_cpu = enc(w)
    z_gpu = enc.cuda()(w.to("cuda"))
    assert z_gpu.device.type == "cuda" and z_gpu.shape == (2, 3, 16)
    torch.testing.assert_close(z_gpu.cpu(), z_cpu, atol=1e-4, rtol=1e-4)
