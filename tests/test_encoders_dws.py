"""Properties of the DWS encoder (`rnn_weightspace.encoders.dws`): shapes, exact permutation invariance of the
encoder and equivariance of every layer (float64), measured non-invariance to sign flips, determinism, gradients,
errors, and the layer on CUDA when there is one."""
import pytest
import torch

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.encoders.base import invariance_error, make_encoder
from rnn_weightspace.encoders.dws import DWSEncoder, DWSFeatures, DWSLayer, lstm_to_features
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights
from rnn_weightspace.symmetry import HiddenSymmetry

SPECS = {  # name: spec
    "FL": LSTMSpec(6, 32, 2, 6),
    "sMNIST": LSTMSpec(16, 32, 2, 10),
    "L1-H4": LSTMSpec(3, 4, 1, 2),
    "L3-H8": LSTMSpec(5, 8, 3, 4),
    "L2-H4-io1": LSTMSpec(1, 4, 2, 1),
}
BATCHES = [(), (1,), (5,), (2, 3)]
CASES = [(s, B) for s in SPECS for B in BATCHES]
IDS = [f"{s}-B{'x'.join(map(str, B)) or '0'}" for s, B in CASES]


def models(spec, B, seed=0, dtype=torch.float64):
    "Random models with weights larger than at init."
    g = torch.Generator().manual_seed(seed)
    w = LSTMWeights.init(spec, B, generator=g)
    return w.map(lambda t: t + 0.3 * torch.randn(t.shape, generator=g)).to(dtype), g


def encoder(spec, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return DWSEncoder.from_size("tiny", spec).to(dtype).eval()


def permute_features(x: DWSFeatures, perms):
    "Reference permutation of channels-last features with explicit per-model loops (independent of `DWSFeatures.permute`)."
    out = [[t.clone() for t in ts] for ts in (x.wi, x.wh, x.bi, x.bh)] + [x.wo.clone(), x.bo.clone()]
    L = x.num_layers
    for m in range(len(x)):
        p = [q[m] for q in perms]
        for l in range(L):
            wi = x.wi[l][m][p[l]]                                  # [H, in_l, C]
            out[0][l][m] = wi if l == 0 else wi[:, p[l - 1]]
            out[1][l][m] = x.wh[l][m][p[l]][:, p[l]]                # [H, H, C]
            out[2][l][m] = x.bi[l][m][p[l]]                         # [H, C]
            out[3][l][m] = x.bh[l][m][p[l]]
        out[4][m] = x.wo[m][:, p[L - 1]]                            # [O, H, C]
    return DWSFeatures(*out)


def max_diff(a: DWSFeatures, b: DWSFeatures):
    return max((s - t).abs().max().item() for s, t in zip(a.tensors(), b.tensors()))


@pytest.mark.parametrize("name,B", CASES, ids=IDS)
def test_shape_and_invariance(name, B):
    spec = SPECS[name]
    enc, (w, g) = encoder(spec), models(spec, B)
    z = enc(w)
    assert z.shape == (*B, enc.embedding_size) and bool(torch.isfinite(z).all())
    assert invariance_error(enc, w, generator=g) < 1e-10


@pytest.mark.parametrize("name", list(SPECS))
def test_not_sign_invariant(name):
    "Documented limitation: DWS layers are not equivariant to hidden-unit sign flips, so E(s·w) != E(w)."
    spec = SPECS[name]
    enc, (w, g) = encoder(spec), models(spec, (6,))
    assert not DWSEncoder.sign_invariant and DWSEncoder.permutation_invariant
    assert invariance_error(enc, w, permutations=False, signs=True, generator=g) > 1e-6


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("io", [True, False])
def test_layer_equivariance(name, io):
    spec = SPECS[name]
    w, g = models(spec, (4,))
    perms = HiddenSymmetry.random(spec, (4,), generator=g, signs=False).perms
    torch.manual_seed(1)
    x = lstm_to_features(w)
    # the features commute with the symmetry, and `permute` matches the reference loops
    sym = HiddenSymmetry(perms, [torch.ones(4, spec.hidden_size)] * spec.num_layers)
    assert max_diff(lstm_to_features(sym.apply(w)), permute_features(x, perms)) == 0
    assert max_diff(x.permute(perms), permute_features(x, perms)) == 0
    for c_in, c_out in ((4, 3), (3, 5)):
        layer = DWSLayer(spec, c_in, c_out, io_embeddings=io).double()
        if c_in != 4: x = x.map(lambda t: t[..., :1].expand(*t.shape[:-1], c_in) * torch.arange(1., c_in + 1, dtype=t.dtype))
        y = layer(x)
        assert y.channels == c_out
        assert max_diff(layer(permute_features(x, perms)), permute_features(y, perms)) < 1e-12
        scale = max(t.abs().max().item() for t in y.tensors())
        assert scale > 1e-3  # not trivially zero


def test_layer_moves_with_permutation():
    "A non-identity permutation does change the layer's output (the check above is not vacuous)."
    spec = SPECS["L1-H4"]
    w, _ = models(spec, (2,))
    x = lstm_to_features(w)
    layer = DWSLayer(spec, 4, 2).double()
    perms = [torch.tensor([1, 2, 3, 0]).expand(2, 4)]
    assert max_diff(layer(permute_features(x, perms)), layer(x)) > 1e-4


def test_determinism():
    spec = SPECS["FL"]
    w, _ = models(spec, (3,), dtype=torch.float32)
    a, b = encoder(spec, 0, torch.float32), encoder(spec, 0, torch.float32)
    assert torch.equal(a(w), b(w))
    assert not torch.equal(encoder(spec, 1, torch.float32)(w), a(w))


@pytest.mark.parametrize("name", ["FL", "L1-H4", "L3-H8"])
def test_gradients_reach_every_parameter(name):
    spec = SPECS[name]
    enc = encoder(spec, dtype=torch.float32).train()
    w, _ = models(spec, (5,), dtype=torch.float32)
    enc(w).pow(2).sum().backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None, n
        assert bool((p.grad != 0).any()), n


def test_channels_last_layout():
    "Every feature tensor is `[M, ..., C]`: the gates (then the layer's channels) on the last axis."
    spec = SPECS["L3-H8"]
    w, _ = models(spec, (2,))
    x = lstm_to_features(w)
    H, I, O = spec.hidden_size, spec.input_size, spec.output_size
    assert [tuple(t.shape) for t in x.tensors()] == ([(2, H, I, 4)] + [(2, H, H, 4)] * 5 + [(2, H, 4)] * 6
                                                     + [(2, O, H, 4), (2, O, 4)])
    assert torch.equal(x.wh[1][1, 3, :, 2], w.weight_hh[1][1, 2 * H + 3])      # gate g, unit 3
    assert torch.equal(x.bi[2][0, 5], w.bias_ih[2][0].view(4, H)[:, 5])
    assert torch.equal(x.wo[..., 1], w.weight_out) and torch.equal(x.bo[..., 3], w.bias_out)
    y = DWSLayer(spec, 4, 3).double()(x)
    assert y.channels == 3 and [t.shape[:-1] for t in y.tensors()] == [t.shape[:-1] for t in x.tensors()]
    assert all(t.is_contiguous() for t in [*y.wi, *y.wh, y.wo])


def test_batch_of_one_and_single_model():
    spec = SPECS["FL"]
    enc, (w, _) = encoder(spec), models(spec, (4,))
    assert enc(w[:1]).shape == (1, 16)
    torch.testing.assert_close(enc(w[2]), enc(w)[2], rtol=0, atol=1e-12)


def test_errors():
    spec = SPECS["FL"]
    enc = encoder(spec)
    w, _ = models(LSTMSpec(6, 16, 2, 6), (2,))
    with pytest.raises(RNNWSError, match="was built for"): enc(w)
    with pytest.raises(RNNWSError, match="was built for"): DWSLayer(spec, 3, 4).double()(lstm_to_features(models(spec, (2,))[0]))
    with pytest.raises(RNNWSError, match="at least one"): DWSEncoder(spec, n_layers=0)


def test_registry_and_sizes():
    spec = SPECS["FL"]
    enc = make_encoder("dws", spec)
    assert isinstance(enc, DWSEncoder) and enc.name == "dws"
    assert 0.8e6 < enc.n_params < 1.6e6
    assert 50e3 < DWSEncoder.from_size("small", spec).n_params < 150e3
    assert 5e3 < DWSEncoder.from_size("tiny", spec).n_params < 20e3
    assert make_encoder("dws", spec, size=None, channels=4, n_layers=1)(models(spec, (2,), dtype=torch.float32)[0]).shape == (2, 16)


def test_float32():
    spec = SPECS["sMNIST"]
    enc = encoder(spec, dtype=torch.float32)
    w, g = models(spec, (3,), dtype=torch.float32)
    assert enc(w).dtype == torch.float32
    assert invariance_error(enc, w, generator=g) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda():
    spec = SPECS["FL"]
    w, g = models(spec, (4,))
    perms = HiddenSymmetry.random(spec, (4,), generator=g, signs=False).perms
    torch.manual_seed(0)
    layer = DWSLayer(spec, 4, 6).double()
    x = lstm_to_features(w)
    y_cpu = layer(x)
    layer, xc = layer.cuda(), lstm_to_features(w.to("cuda"))
    y = layer(xc)
    assert y.bo.device.type == "cuda"
    assert max_diff(y.map(torch.Tensor.cpu), y_cpu) < 1e-10
    assert max_diff(layer(xc.permute([p.cuda() for p in perms])), y.permute(perms)) < 1e-10
    enc = encoder(spec).cuda()
    assert invariance_error(enc, w.to("cuda")) < 1e-10
