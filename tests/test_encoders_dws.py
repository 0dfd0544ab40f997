"""Properties of the DWS encoders (`rnn_weightspace.encoders.dws`), the paper's (`DWSEncoder`, `NPLSTMLayer`: the
authors' released `NFLSTMParameterEncoder`) and ours (`DWSFullEncoder`, `DWSLayer`: the full basis): shapes, exact
permutation invariance of the encoders and equivariance of every layer (float64, 1-3 LSTM layers), measured
non-invariance to sign flips, determinism, gradients, errors, the paper architecture pinned (released parameter
counts, fixed output values, initialisation, the released layer's asymmetry), and the layers on CUDA when there is
one. The comparison with the released code itself is `scripts/check_released.py --only dws`."""
import math

import pytest
import torch

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.encoders.base import invariance_error, make_encoder
from rnn_weightspace.encoders.dws import (DWSEncoder, DWSFeatures, DWSFullEncoder, DWSLayer, NPLSTMLayer, _np_terms,
                                          lstm_to_features, np_pool)
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights
from rnn_weightspace.symmetry import HiddenSymmetry

SPECS = {  # name: spec
    "FL": LSTMSpec(6, 32, 2, 6),
    "sMNIST": LSTMSpec(16, 32, 2, 10),
    "L1-H4": LSTMSpec(3, 4, 1, 2),
    "L3-H8": LSTMSpec(5, 8, 3, 4),
    "L2-H4-io1": LSTMSpec(1, 4, 2, 1),
    "GRU-L2-H6": LSTMSpec(6, 6, 2, 6, cell="gru"),                # 3 gate blocks: 3 input channels
    "Elman-L3-H4": LSTMSpec(3, 4, 3, 2, cell="rnn"),              # 1 gate block
}
ENCODERS = {"dws": DWSEncoder, "dws-full": DWSFullEncoder}
LAYERS = {"np": NPLSTMLayer, "full": DWSLayer}
BATCHES = [(), (1,), (5,), (2, 3)]
CASES = [(s, B) for s in SPECS for B in BATCHES]
IDS = [f"{s}-B{'x'.join(map(str, B)) or '0'}" for s, B in CASES]


def models(spec, B, seed=0, dtype=torch.float64):
    "Random models with weights larger than at init (as `random_models` in scripts/check_released.py)."
    g = torch.Generator().manual_seed(seed)
    w = LSTMWeights.init(spec, B, generator=g)
    return w.map(lambda t: t + 0.3 * torch.randn(t.shape, generator=g)).to(dtype), g


def encoder(spec, seed=0, dtype=torch.float64, name="dws"):
    torch.manual_seed(seed)
    return ENCODERS[name].from_size("tiny", spec).to(dtype).eval()


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


@pytest.mark.parametrize("enc_name", list(ENCODERS))
@pytest.mark.parametrize("name,B", CASES, ids=IDS)
def test_shape_and_invariance(name, B, enc_name):
    spec = SPECS[name]
    enc, (w, g) = encoder(spec, name=enc_name), models(spec, B)
    z = enc(w)
    assert z.shape == (*B, enc.embedding_size) and bool(torch.isfinite(z).all())
    assert invariance_error(enc, w, generator=g) < 1e-10


@pytest.mark.parametrize("enc_name", list(ENCODERS))
@pytest.mark.parametrize("name", list(SPECS))
def test_not_sign_invariant(name, enc_name):
    "Documented limitation: DWS layers are not equivariant to hidden-unit sign flips, so E(s·w) != E(w)."
    spec, cls = SPECS[name], ENCODERS[enc_name]
    enc, (w, g) = encoder(spec, name=enc_name), models(spec, (6,))
    assert not cls.sign_invariant and cls.permutation_invariant
    assert invariance_error(enc, w, permutations=False, signs=True, generator=g) > 1e-6


@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("io", [True, False])
def test_layer_equivariance(name, io, layer_name):
    "Exact equivariance (float64) under one random permutation per model and layer, for 1, 2 and 3 layers and the three cells."
    spec = SPECS[name]
    w, g = models(spec, (4,))
    perms = HiddenSymmetry.random(spec, (4,), generator=g, signs=False).perms
    torch.manual_seed(1)
    x = lstm_to_features(w)
    # the features commute with the symmetry, and `permute` matches the reference loops
    sym = HiddenSymmetry(perms, [torch.ones(4, spec.hidden_size)] * spec.num_layers)
    assert max_diff(lstm_to_features(sym.apply(w)), permute_features(x, perms)) == 0
    assert max_diff(x.permute(perms), permute_features(x, perms)) == 0
    for c_in, c_out in ((spec.gates, 3), (3, 5)):                # the features' channels are the gate blocks (LSTM 4, GRU 3, Elman 1)
        layer = LAYERS[layer_name](spec, c_in, c_out, io_embeddings=io).double()
        if c_in != x.channels: x = x.map(lambda t: t[..., :1].expand(*t.shape[:-1], c_in) * torch.arange(1., c_in + 1, dtype=t.dtype))
        y = layer(x)
        assert y.channels == c_out
        assert max_diff(layer(permute_features(x, perms)), permute_features(y, perms)) < 1e-12
        scale = max(t.abs().max().item() for t in y.tensors())
        assert scale > 1e-3  # not trivially zero


@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_layer_moves_with_permutation(layer_name):
    "A non-identity permutation does change the layer's output (the check above is not vacuous)."
    spec = SPECS["L1-H4"]
    w, _ = models(spec, (2,))
    x = lstm_to_features(w)
    layer = LAYERS[layer_name](spec, 4, 2).double()
    perms = [torch.tensor([1, 2, 3, 0]).expand(2, 4)]
    assert max_diff(layer(permute_features(x, perms)), layer(x)) > 1e-4


@pytest.mark.parametrize("name", ["FL", "L1-H4", "L3-H8", "L2-H4-io1"])
def test_np_pool_of_the_layer(name):
    "`NPLSTMLayer(x, pool=True)` is `np_pool` of its output (what the encoder uses for its last layer)."
    spec = SPECS[name]
    x = lstm_to_features(models(spec, (3,))[0])
    torch.manual_seed(0)
    layer = NPLSTMLayer(spec, 4, 6).double()
    z = layer(x, pool=True)
    assert z.shape == (3, 6 * (4 * spec.num_layers + 2))
    torch.testing.assert_close(z, np_pool(layer(x)), rtol=0, atol=1e-13)


def test_np_pool_order():
    "The released pooling order: W_i^l, W_h^l, b_i^l, b_h^l for every layer, then W_o, b_o; channel blocks."
    spec = SPECS["L3-H8"]
    x = lstm_to_features(models(spec, (2,))[0])
    L = spec.num_layers
    released = [(k, l) for l in range(L) for k in ("wi", "wh", "bi", "bh")] + [("wo", None), ("bo", None)]
    value = {key: float(i) for i, key in enumerate(released)}
    fill = lambda t, v: torch.full_like(t, v) + torch.arange(4, dtype=t.dtype) / 10   # the channel in the decimals
    y = DWSFeatures(*[[fill(t, value[k, l]) for l, t in enumerate(getattr(x, k))] for k in ("wi", "wh", "bi", "bh")],
                    fill(x.wo, value["wo", None]), fill(x.bo, value["bo", None]))
    expected = torch.tensor([i + c / 10 for i in range(len(released)) for c in range(4)], dtype=torch.float64)
    torch.testing.assert_close(np_pool(y), expected.expand(2, -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_released_asymmetry(L):
    """The released layer's quirk, reproduced: the top layer's W_h (and b_h) do not read the readout's row means r(W_o),
    while its W_i (and b_i) do; lower layers' W_h read the next layer's r(W_i)."""
    spec = LSTMSpec(3, 6, L, 4)
    w, _ = models(spec, (2,))
    x = lstm_to_features(w)
    torch.manual_seed(0)
    layer = NPLSTMLayer(spec, 4, 3).double()
    v = torch.linspace(-1, 1, spec.hidden_size, dtype=torch.float64)          # zero mean: only r(W) moves, not c(W) or G
    def moved(key):
        "`x` with the same vector over the columns added to every row of one weight: changes its row means only."
        t = x.wo if key == "wo" else x.wi[key]
        t2 = t + v[None, None, :, None]
        if key == "wo": return DWSFeatures(x.wi, x.wh, x.bi, x.bh, t2, x.bo)
        return DWSFeatures([t2 if l == key else u for l, u in enumerate(x.wi)], x.wh, x.bi, x.bh, x.wo, x.bo)
    y, yo = layer(x), layer(moved("wo"))
    top = L - 1
    assert (y.wh[top] - yo.wh[top]).abs().max() < 1e-12 and (y.bh[top] - yo.bh[top]).abs().max() < 1e-12
    assert (y.wi[top] - yo.wi[top]).abs().max() > 1e-3 and (y.bi[top] - yo.bi[top]).abs().max() > 1e-3
    for l in range(L - 1):                                                     # W_h^l reads r(W_i^{l+1})
        yl = layer(moved(l + 1))
        assert (y.wh[l] - yl.wh[l]).abs().max() > 1e-3 and (y.bh[l] - yl.bh[l]).abs().max() > 1e-3
    # the full-basis layer reads r(W_o) in the top layer's W_h
    full = DWSLayer(spec, 4, 3).double()
    assert (full(x).wh[top] - full(moved("wo")).wh[top]).abs().max() > 1e-3


def test_np_terms():
    "The released basis: per output, the number of input channels of each map (in units of C_in)."
    t = {k: dict(v) for k, v in _np_terms(2).items()}
    assert t["wi0"] == {"self": 1, "glob": 10, "cols": 1, "rows": 6} and t["wi1"] == {"self": 1, "glob": 10, "cols": 6, "rows": 6}
    assert t["wo"] == {"self": 1, "glob": 10, "cols": 6, "rows": 2} and t["bo"] == {"rows": 2, "glob": 10}
    assert t["wh0"] == {"self": 1, "glob": 10, "cols": 5, "rows": 4} and t["wh1"] == {"self": 1, "glob": 10, "cols": 5, "rows": 3}
    assert t["bi1"] == {"rows": 6, "glob": 10} and t["bh1"] == {"rows": 3, "glob": 10}
    # one channel in and out: 73 maps for one LSTM layer, 170 for two (DWSLayer: 107 and 254)
    n_maps = lambda L: sum(k for terms in _np_terms(L).values() for _, k in terms)
    assert (n_maps(1), n_maps(2)) == (73, 170)
    assert sum(p.numel() for p in NPLSTMLayer(SPECS["FL"], 1, 1, io_embeddings=False).weight.values()) == 170


def test_released_initialisation():
    "`set_init_`: the maps summed into one output share the bound sqrt(1/K), K their total input channels; N(0,1) embeddings."
    torch.manual_seed(0)
    spec, c_in = SPECS["FL"], 48
    layer = NPLSTMLayer(spec, c_in, 48)
    for out, terms in _np_terms(spec.num_layers).items():
        bound = math.sqrt(1 / (c_in * sum(k for _, k in terms)))
        group = torch.cat([p.detach().flatten() for t, _ in terms
                           for p in (layer.weight[f"{out}_{t}"], layer.bias[f"{out}_{t}"])])
        assert group.abs().max() <= bound and group.abs().max() > 0.99 * bound, out
        assert abs(group.std().item() / (bound / math.sqrt(3)) - 1) < 0.05, out             # uniform, not e.g. normal
    emb = torch.cat([layer.embed_in.flatten(), layer.embed_wo.flatten(), layer.embed_bo.flatten()]).detach()
    assert abs(emb.std().item() - 1) < 0.1 and abs(emb.mean().item()) < 0.1
    assert layer.embed_in.shape == (spec.input_size, c_in)
    assert layer.embed_wo.shape == layer.embed_bo.shape == (spec.output_size, c_in)


def test_paper_architecture():
    "The released parameter counts of both zoo architectures, and fixed embeddings (computed after the released-code check)."
    fl, mn = SPECS["FL"], SPECS["sMNIST"]
    assert DWSEncoder.from_size("paper", fl).n_params == 1_279_736
    assert DWSEncoder.from_size("paper", mn).n_params == 1_282_400
    assert make_encoder("dws", mn).n_params == 1_282_400
    torch.manual_seed(0)
    enc = DWSEncoder.from_size("paper", fl).double()
    assert [(l.c_in, l.c_out) for l in enc.layers] == [(4, 48), (48, 48), (48, 48), (48, 48)]
    assert [tuple(m.weight.shape) for m in enc.head if isinstance(m, torch.nn.Linear)] == [(128, 480), (16, 128)]
    w, _ = models(fl, (8,))
    with torch.no_grad(): z = enc(w)
    expected = torch.tensor([[0.00150443, -0.10566073, 0.03536759, -0.03938111],
                             [0.00102759, -0.10529999, 0.03593645, -0.03910249]], dtype=torch.float64)
    torch.testing.assert_close(z[:2, :4], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(z[7, -3:], torch.tensor([-0.02870947, -0.08050411, 0.03866860], dtype=torch.float64),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("enc_name", list(ENCODERS))
def test_determinism(enc_name):
    spec = SPECS["FL"]
    w, _ = models(spec, (3,), dtype=torch.float32)
    a, b = encoder(spec, 0, torch.float32, enc_name), encoder(spec, 0, torch.float32, enc_name)
    assert torch.equal(a(w), b(w))
    assert not torch.equal(encoder(spec, 1, torch.float32, enc_name)(w), a(w))


@pytest.mark.parametrize("enc_name", list(ENCODERS))
@pytest.mark.parametrize("name", ["FL", "L1-H4", "L3-H8"])
def test_gradients_reach_every_parameter(name, enc_name):
    spec = SPECS[name]
    enc = encoder(spec, dtype=torch.float32, name=enc_name).train()
    w, _ = models(spec, (5,), dtype=torch.float32)
    enc(w).pow(2).sum().backward()
    for n, p in enc.named_parameters():
        assert p.grad is not None, n
        assert bool((p.grad != 0).any()), n


@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_channels_last_layout(layer_name):
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
    y = LAYERS[layer_name](spec, 4, 3).double()(x)
    assert y.channels == 3 and [t.shape[:-1] for t in y.tensors()] == [t.shape[:-1] for t in x.tensors()]
    assert all(t.is_contiguous() for t in [*y.wi, *y.wh, y.wo])


@pytest.mark.parametrize("enc_name", list(ENCODERS))
def test_batch_of_one_and_single_model(enc_name):
    spec = SPECS["FL"]
    enc, (w, _) = encoder(spec, name=enc_name), models(spec, (4,))
    assert enc(w[:1]).shape == (1, 16)
    torch.testing.assert_close(enc(w[2]), enc(w)[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("enc_name", list(ENCODERS))
def test_errors(enc_name):
    spec, cls = SPECS["FL"], ENCODERS[enc_name]
    enc = encoder(spec, name=enc_name)
    w, _ = models(LSTMSpec(6, 16, 2, 6), (2,))
    with pytest.raises(RNNWSError, match="was built for"): enc(w)
    for layer in LAYERS.values():
        with pytest.raises(RNNWSError, match="was built for"): layer(spec, 3, 4).double()(lstm_to_features(models(spec, (2,))[0]))
    with pytest.raises(RNNWSError, match="at least one"): cls(spec, n_layers=0)


def test_registry_and_sizes():
    spec = SPECS["FL"]
    for name, cls in ENCODERS.items():
        enc = make_encoder(name, spec)
        assert type(enc) is cls and enc.name == name
        assert 0.8e6 < enc.n_params < 1.6e6
        assert 30e3 < cls.from_size("small", spec).n_params < 150e3
        assert 3e3 < cls.from_size("tiny", spec).n_params < 20e3
        one_layer = make_encoder(name, spec, size=None, channels=4, n_layers=1)
        assert one_layer(models(spec, (2,), dtype=torch.float32)[0]).shape == (2, 16)
    assert DWSEncoder.sizes == {"paper": dict(channels=48, n_layers=4, mlp_hidden=128),
                                "small": dict(channels=12, n_layers=3, mlp_hidden=64),
                                "tiny": dict(channels=4, n_layers=2, mlp_hidden=32)}


@pytest.mark.parametrize("enc_name", list(ENCODERS))
def test_float32(enc_name):
    spec = SPECS["sMNIST"]
    enc = encoder(spec, dtype=torch.float32, name=enc_name)
    w, g = models(spec, (3,), dtype=torch.float32)
    assert enc(w).dtype == torch.float32
    assert invariance_error(enc, w, generator=g) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_cuda(layer_name):
    spec = SPECS["FL"]
    w, g = models(spec, (4,))
    perms = HiddenSymmetry.random(spec, (4,), generator=g, signs=False).perms
    torch.manual_seed(0)
    layer = LAYERS[layer_name](spec, 4, 6).double()
    x = lstm_to_features(w)
    y_cpu = layer(x)
    layer, xc = layer.cuda(), lstm_to_features(w.to("cuda"))
    y = layer(xc)
    assert y.bo.device.type == "cuda"
    assert max_diff(y.map(torch.Tensor.cpu), y_cpu) < 1e-10
    assert max_diff(layer(xc.permute([p.cuda() for p in perms])), y.permute(perms)) < 1e-10
    name = {"np": "dws", "full": "dws-full"}[layer_name]
    enc = encoder(spec, name=name).cuda()
    assert invariance_error(enc, w.to("cuda")) < 1e-10
    torch.testing.assert_close(enc(w.to("cuda")).cpu(), enc.cpu()(w), rtol=0, atol=1e-10)
