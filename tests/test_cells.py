"""GRUs and Elman RNNs in the weight core: the functional forward and single step against `nn.GRU` / `nn.RNN` for
layers, sizes, batch shapes and explicit states, gradients, conversions, and their hidden-unit symmetries (exact
invariance of the ones that hold; the GRU's gates that cannot carry a sign)."""
import itertools

import numpy as np

import pytest
import torch
from torch import nn

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.lstm import LSTMModel, LSTMSpec, LSTMWeights, lstm_forward, lstm_step, zero_state
from rnn_weightspace.symmetry import PARTS, HiddenSymmetry, flip_signs, permute_hidden
from rnn_weightspace import symmetry

CELLS = ("gru", "rnn")
SPECS = [(6, 32, 2, 6), (3, 5, 1, 2), (4, 8, 3, 7)]
BATCHES = [(), (4,), (2, 3)]


def _models(cell, shape, batch, seed=0, scale=0.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    w = LSTMWeights.init(LSTMSpec(*shape, cell=cell), batch, generator=g, dtype=dtype)
    return w.map(lambda t: t + scale * torch.randn(t.shape, generator=g, dtype=dtype)) if scale else w


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SPECS, ids=str)
@pytest.mark.parametrize("batch", BATCHES, ids=str)
def test_forward_and_step_match_torch(cell, shape, batch):
    w = _models(cell, shape, batch)
    spec, g = w.spec, torch.Generator().manual_seed(1)
    N, T, L, H = 3, 6, spec.num_layers, spec.hidden_size
    x, h0 = torch.randn(*batch, N, T, spec.input_size, generator=g), torch.randn(*batch, L, N, H, generator=g)
    y, h = lstm_forward(w, x, h0)
    assert y.shape == (*batch, N, T, spec.output_size) and h.shape == (*batch, L, N, H)
    for idx in itertools.product(*[range(b) for b in batch]):
        m = w[idx].to_module() if batch else w.to_module()
        assert isinstance(getattr(m, cell), {"gru": nn.GRU, "rnn": nn.RNN}[cell])
        y_ref, h_ref = m(x[idx], h0[idx])
        torch.testing.assert_close(y[idx], y_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(h[idx], h_ref, atol=1e-5, rtol=0)
    state, y0 = zero_state(w, N), lstm_forward(w, x)[0]
    for t in range(T):
        y_t, state = lstm_step(w, x[..., t, :], state)
        torch.testing.assert_close(y_t, y0[..., t, :], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SPECS, ids=str)
def test_gradients_and_conversions(cell, shape):
    w = _models(cell, shape, (2,)).requires_grad_()
    x = torch.randn(2, 3, 4, shape[0], generator=torch.Generator().manual_seed(3))
    lstm_forward(w, x)[0].sin().sum().backward()
    for i in range(2):
        m = w[i].detach().to_module()
        m(x[i])[0].sin().sum().backward()
        for name, p in m.named_parameters():
            assert name.startswith((f"{cell}.", "linear."))
            torch.testing.assert_close(w[name].grad[i], p.grad, atol=1e-5, rtol=1e-4)
    m = LSTMModel(LSTMSpec(*shape, cell=cell))
    v = LSTMWeights.from_module(m)
    flat = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert torch.equal(v.flatten(), flat) and torch.equal(LSTMWeights.from_flat(flat, v.spec).flatten(), flat)
    assert LSTMSpec.from_dict(v.spec.to_dict()) == v.spec and v.spec.to_dict()["cell"] == cell


def test_lstm_specs_read_and_write_as_before():
    spec = LSTMSpec(6, 32, 2, 6)
    assert spec.to_dict() == {"input_size": 6, "hidden_size": 32, "num_layers": 2, "output_size": 6}   # manifests unchanged
    assert LSTMSpec.from_dict(spec.to_dict()).cell == "lstm" and spec.layout[0][0] == "lstm.weight_ih_l0"
    with pytest.raises(RNNWSError, match="cell must be one of"): LSTMSpec(6, 8, 1, 6, cell="GRU")
    with pytest.raises(RNNWSError, match="state is h alone"):
        lstm_forward(_models("gru", (6, 8, 1, 6), ()), torch.zeros(2, 3, 6), (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8)))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L,B", [(1, ()), (2, (5,)), (3, (2, 3))], ids=str)
@pytest.mark.parametrize("kind", ["perm", "sign", "both"])
def test_symmetries_leave_the_function_unchanged(cell, L, B, kind):
    # float64 and weights larger than at init (a nonlinear regime): exact up to rounding, which float32 would amplify
    # over 3 layers and 8 steps of an Elman network to ~1e-5
    w = _models(cell, (3, 16, L, 4), B, scale=0.6, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*B, 6, 8, 3, generator=g, dtype=torch.float64)
    sym = HiddenSymmetry.random(w.spec, B, generator=g, signs=kind != "perm")
    if kind == "sign": sym = HiddenSymmetry(HiddenSymmetry.identity(w.spec, B).perms, sym.signs)
    y, h = lstm_forward(w, x)
    y2, h2 = lstm_forward(sym.apply(w), x)
    assert (y2 - y).abs().max() < 1e-10
    assert (h2 - sym.apply_state(h)).abs().max() < 1e-10             # the state is equivariant


@pytest.mark.parametrize("cell", CELLS)
def test_each_part_is_needed(cell):
    w = _models(cell, (3, 8, 2, 4), (3,), scale=0.6)
    x = torch.randn(3, 6, 8, 3, generator=torch.Generator().manual_seed(6))
    y, signs = lstm_forward(w, x)[0], -torch.ones(3, 8)
    perm = torch.stack([torch.roll(torch.arange(8), 1)] * 3)         # every unit moves
    for layer in range(2):
        for part in PARTS:
            rest = [p for p in PARTS if p != part]
            assert (lstm_forward(permute_hidden(w, layer, perm, rest), x)[0] - y).abs().max() > 1e-3
            assert (lstm_forward(flip_signs(w, layer, signs, rest), x)[0] - y).abs().max() > 1e-3


@pytest.mark.parametrize("block", [0, 1])
def test_gru_gates_cannot_carry_a_sign(block, monkeypatch):
    "Flipping the rows of the reset (0) or update (1) gate instead of the candidate n changes the function: sigma is not odd."
    w = _models("gru", (3, 8, 2, 4), (3,), scale=0.6)
    x = torch.randn(3, 6, 8, 3, generator=torch.Generator().manual_seed(7))
    y = lstm_forward(w, x)[0]
    assert (lstm_forward(flip_signs(w, 0, -torch.ones(8)), x)[0] - y).abs().max() < 1e-5
    monkeypatch.setitem(symmetry._SIGNED_BLOCK, "gru", block)
    assert (lstm_forward(flip_signs(w, 0, -torch.ones(8)), x)[0] - y).abs().max() > 1e-2


# --- zoos of GRUs and Elman RNNs: built by both backends, read, trained on -------------------------------------------
CFG = {"n_runs": 4, "steps": 60, "checkpoints": [0, 30, 60], "lr_steps": [0, 60], "lr_values": [0.01, 0.003],
       "eval_samples": 50, "n_rollouts": 3, "runs_per_shard": 2, "seed": 3, "preset": "test"}


@pytest.fixture(scope="module", params=CELLS)
def cell_zoo(request, tmp_path_factory):
    "A tiny formal-language zoo of the cell, built with `rnnws zoo build --cell` (CPU backend)."
    import json, os, subprocess, sys
    d = tmp_path_factory.mktemp(request.param)
    (d / "cfg.json").write_text(json.dumps(CFG))
    r = subprocess.run([sys.executable, "-m", "rnn_weightspace.cli", "zoo", "build", "formal-languages", "--config", str(d / "cfg.json"),
                        "--cell", request.param, "--out", str(d / "zoo"), "--workers", "2", "--no-progress"],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return request.param, d / "zoo"


def test_cell_zoo_builds_with_both_backends(cell_zoo, tmp_path):
    from dataclasses import replace
    from rnn_weightspace.zoo.reader import Zoo
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    cell, root = cell_zoo
    zoo = Zoo(root, verify=True)
    assert zoo.spec.cell == cell and zoo.manifest.model_spec.cell == cell and zoo.manifest.config["cell"] == cell
    assert zoo.manifest["parameter_layout"][0][0] == f"{cell}.weight_ih_l0"
    assert isinstance(getattr(zoo.to_module(0), cell), {"gru": nn.GRU, "rnn": nn.RNN}[cell])
    batched = build_zoo(replace(FormalLanguageZooConfig.from_dict(CFG), cell=cell), tmp_path / "b", backend="batched", device="cpu", progress=False)
    wb, wc, step = batched.weights[:].flatten(), zoo.weights[:].flatten(), torch.as_tensor(zoo.metadata.step.to_numpy().copy())
    assert torch.equal(wb[step == 0], wc[step == 0])                   # the same initialisation, bit for bit
    assert ((wb - wc).norm(dim=1) / wc.norm(dim=1))[step == 30].max() < 1e-4   # the same training up to rounding
    roll, m = zoo.rollouts[4], zoo.to_module(4)                           # the stored log-probs are the model's
    x = torch.nn.functional.one_hot(roll["tokens"][:, :-1].long(), 6).float()
    torch.testing.assert_close(torch.log_softmax(m(x)[0], -1), roll["log_probs"].float(), atol=3e-3, rtol=1e-3)   # stored as float16
    lstm_cfg = FormalLanguageZooConfig.from_dict(CFG)                      # an LSTM recipe's dict is as before
    assert "cell" not in lstm_cfg.to_dict() and FormalLanguageZooConfig.from_dict({**CFG, "cell": cell}).cell == cell


def test_encoders_train_and_clone_on_cell_zoos(cell_zoo, tmp_path):
    from rnn_weightspace.clones import clone_accuracy
    from rnn_weightspace.training import train, train_preset
    cell, root = cell_zoo
    for name in ("layerwise-stats", "dws", "probe-static"):
        run = train(root, train_preset("tiny", encoder=name, steps=6, eval_every=3, log_every=3), tmp_path / name, device="cpu",
                    progress=False, figures=False)
        val = run.metrics[run.metrics.split == "val"].loss
        assert len(val) == 3 and np.isfinite(val).all()
    from rnn_weightspace.zoo.reader import Zoo
    zoo = Zoo(root)
    enc, emu = run.load(zoo)
    df = clone_accuracy(zoo.split("val"), enc, emu, n_samples=8, seed=0)
    assert len(df) == len(zoo.split("val")) and df.clone.between(0, 1).all() and df.original.between(0, 1).all()


@pytest.mark.slow   # the default run checks the same transfer on the mixed zoo (test_mixed_zoo_downstream_predicts_the_cell)
def test_probing_encoders_transfer_across_cells(cell_zoo, tmp_path):
    "A probing encoder trained on an LSTM zoo embeds GRU and Elman models (it sees only their inputs and outputs); weight readers refuse."
    from rnn_weightspace.zoo.reader import Zoo
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    from rnn_weightspace.training import train, train_preset
    cell, root = cell_zoo
    lstm_zoo = build_zoo(FormalLanguageZooConfig.from_dict(CFG), tmp_path / "lstm", workers=1, progress=False)
    cfg = dict(steps=3, eval_every=3, log_every=3)
    probe = train(lstm_zoo, train_preset("tiny", encoder="probe-static", **cfg), tmp_path / "probe", device="cpu", progress=False, figures=False)
    stats = train(lstm_zoo, train_preset("tiny", encoder="layerwise-stats", **cfg), tmp_path / "stats", device="cpu", progress=False, figures=False)
    other = Zoo(root)
    Z = probe.embed(other)
    assert Z.shape == (len(other), probe.config.embedding_size) and np.isfinite(Z).all()
    with pytest.raises(RNNWSError, match="only probing encoders"): stats.embed(other)


@pytest.mark.parametrize("cell", ["gru", pytest.param("rnn", marks=pytest.mark.slow)])   # the Elman build: `-m slow`
def test_sequential_mnist_zoos_of_other_cells(cell, tmp_path):
    "The sequential-MNIST recipe trains GRUs and Elman RNNs too: both backends, the stored log-probs are the models'."
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    from rnn_weightspace.zoo.train import build_zoo
    cfg = SequentialMNISTZooConfig.from_dict({"n_runs": 2, "steps": 20, "checkpoints": [0, 20], "lr_steps": [0, 20], "lr_values": [0.01, 0.003],
                                              "train_loss_images": 50, "n_rollouts": 2, "runs_per_shard": 1, "seed": 3, "preset": "test",
                                              "cell": cell})
    cpu = build_zoo(cfg, tmp_path / "cpu", workers=1, progress=False)
    batched = build_zoo(cfg, tmp_path / "batched", backend="batched", device="cpu", progress=False)
    assert cpu.spec == LSTMSpec(16, 32, 2, 10, cell=cell) and batched.spec == cpu.spec
    rel = (batched.weights[:].flatten() - cpu.weights[:].flatten()).norm(dim=1) / cpu.weights[:].flatten().norm(dim=1)
    assert rel.max() < 1e-3
    roll, m = cpu.rollouts[1], cpu.to_module(1)
    torch.testing.assert_close(torch.log_softmax(m(roll["inputs"].float())[0], -1).exp(), roll["log_probs"].float().exp(), atol=3e-3, rtol=0)


# --- zoos that mix cells ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_zoo(tmp_path_factory):
    "An LSTM zoo and a GRU zoo on the same tasks (the same recipe but the cell), merged into one mixed zoo."
    from dataclasses import replace
    from rnn_weightspace.zoo.merge import merge_zoos
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    d = tmp_path_factory.mktemp("mixed")
    cfg = FormalLanguageZooConfig.from_dict(CFG)
    build_zoo(cfg, d / "lstm", workers=2, progress=False)
    build_zoo(replace(cfg, cell="gru"), d / "gru", workers=2, progress=False)
    return d, merge_zoos([d / "lstm", d / "gru"], d / "mixed", progress=False)


def test_mixed_zoo_reads_per_architecture(mixed_zoo):
    from rnn_weightspace.zoo.format import MIXED_FORMAT_VERSION
    from rnn_weightspace.zoo.reader import Zoo
    d, zoo = mixed_zoo
    zoo = Zoo(zoo.root, verify=True)                                         # every checksum and tensor, per shard architecture
    assert zoo.manifest["format_version"] == MIXED_FORMAT_VERSION and len(zoo) == 2 * 4 * 3
    assert [s.cell for s in zoo.specs] == ["lstm", "gru"] and set(zoo.metadata.cell) == {"lstm", "gru"}
    with pytest.raises(RNNWSError, match="select one first"): zoo.spec
    with pytest.raises(RNNWSError, match="select one first"): zoo.weights[[0, 20]]
    gru = zoo.select(zoo.metadata.cell == "gru")
    assert gru.spec.cell == "gru" and torch.equal(gru.weights[:].flatten(), Zoo(d / "gru").weights[:].flatten())
    assert isinstance(gru.to_module(0).gru, nn.GRU) and zoo.select(zoo.metadata.cell == "lstm").spec == Zoo(d / "lstm").spec
    assert "LSTM and 2x32 GRU" in repr(zoo)
    assert Zoo(d / "lstm").manifest["format_version"] == 1                   # zoos of one architecture are as before


def test_mixed_zoo_downstream_predicts_the_cell(mixed_zoo, tmp_path):
    "A probing encoder embeds the whole mixed zoo (one encoder for both cells), and the downstream harness predicts the cell."
    from rnn_weightspace.evaluation import evaluate_embeddings, targets_for
    from rnn_weightspace.training import train, train_preset
    d, zoo = mixed_zoo
    assert targets_for(zoo)["cell"].n_classes == (2,)
    run = train(d / "lstm", train_preset("tiny", encoder="probe-static", steps=3, eval_every=3, log_every=3), tmp_path / "probe",
                device="cpu", progress=False, figures=False)
    Z = run.embed(zoo)
    assert Z.shape == (len(zoo), run.config.embedding_size) and np.isfinite(Z).all() and np.abs(Z).sum(1).min() > 0
    res = evaluate_embeddings(zoo, Z, targets=["cell"], predictors=["linear"], epochs=50)
    acc = res[(res.split == "test") & (res.metric == "accuracy") & (res.stratum == "all")].value
    assert len(acc) == 1 and 0 <= acc.item() <= 1
    with pytest.raises(RNNWSError, match="only probing encoders"):
        train(d / "lstm", train_preset("tiny", encoder="flat", steps=1, eval_every=1, log_every=1), tmp_path / "flat",
              device="cpu", progress=False, figures=False).embed(zoo)


def test_mixed_zoo_bad_input(mixed_zoo, tmp_path):
    "A shard's own model_spec is checked like the zoo's: named field, one line; it needs format_version 2."
    import json, shutil
    from rnn_weightspace.zoo.format import MANIFEST_NAME
    from rnn_weightspace.zoo.reader import Zoo
    d, zoo = mixed_zoo
    m = json.loads((zoo.root / MANIFEST_NAME).read_text())
    i = next(k for k, sh in enumerate(m["shards"]) if "model_spec" in sh)
    def broken(change):
        bad = tmp_path / "bad"; shutil.rmtree(bad, ignore_errors=True); shutil.copytree(zoo.root, bad)
        mm = json.loads(json.dumps(m)); change(mm); (bad / MANIFEST_NAME).write_text(json.dumps(mm))
        return lambda: Zoo(bad)
    with pytest.raises(RNNWSError, match=rf"field 'shards\[{i}\].model_spec' must have the zoo's input_size"):
        broken(lambda mm: mm["shards"][i]["model_spec"].update(output_size=3))()
    with pytest.raises(RNNWSError, match=rf"field 'shards\[{i}\].model_spec' has cell 'lru'"):
        broken(lambda mm: mm["shards"][i]["model_spec"].update(cell="lru"))()
    with pytest.raises(RNNWSError, match="needs format_version 2"): broken(lambda mm: mm.update(format_version=1))()
    with pytest.raises(RNNWSError, match="holds tensors"):                   # a shard's tensors must be its spec's
        broken(lambda mm: mm["shards"][i].pop("model_spec"))()
    from rnn_weightspace.zoo.merge import merge_zoos
    with pytest.raises(RNNWSError, match="must divide the runs of every source"):
        merge_zoos([d / "lstm", d / "gru"], tmp_path / "m", runs_per_shard=3, progress=False)


def test_from_modules_with_other_cells(tmp_path):
    "Zoo.from_modules takes GRU and Elman modules, bit for bit."
    from dataclasses import replace
    from rnn_weightspace.zoo.reader import Zoo
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    for cell in CELLS:
        models = [LSTMModel(LSTMSpec(6, 8, 2, 6, cell=cell)) for _ in range(3)]
        zoo = Zoo.from_modules(tmp_path / f"modules-{cell}", models, metadata={"task": ["a", "b", "a"]})
        assert zoo.spec.cell == cell
        for i, m in enumerate(models):
            assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), zoo.to_module(i).state_dict().values()))


@pytest.mark.slow   # resume is the same code for every cell (tests/test_zoo_build.py checks it by default on LSTMs)
def test_gru_build_resumes_byte_identical(tmp_path):
    from dataclasses import replace
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    cfg = replace(FormalLanguageZooConfig.from_dict(CFG), cell="gru")
    build_zoo(cfg, tmp_path / "full", workers=1, progress=False)
    build_zoo(cfg, tmp_path / "part", workers=1, max_shards=1, progress=False)
    build_zoo(cfg, tmp_path / "part", workers=1, resume=True, progress=False)
    files = lambda r: {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file() and p.name != ".lock"}
    assert files(tmp_path / "part") == files(tmp_path / "full")
