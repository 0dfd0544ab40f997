"""Emulation training (`rnn_weightspace.training`, `rnnws train`): every encoder end to end on small zoos of both
kinds, exact resume after a real SIGKILL, a budget-limited run resumed, NaN handling, bad configs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.encoders.base import ENCODERS
from rnn_weightspace.runs import Run
from rnn_weightspace.training import TrainConfig, train, train_preset

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def zoos(small_zoos):
    return small_zoos


def small(encoder, **kw):
    return train_preset("tiny", encoder=encoder, **{"steps": 6, "eval_every": 3, "log_every": 3, "batch_size": 4, "eval_models": 6, **kw})


def last_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def assert_same_state(a: dict, b: dict):
    for part in ("encoder", "emulator"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]: assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert a["step"] == b["step"]


def evals(run: Path) -> list:
    return [(r["step"], r["split"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] != "train"]


@pytest.mark.parametrize("kind", ["fl", "mnist"])
@pytest.mark.parametrize("encoder", [*ENCODERS, "weight-blind"])
def test_every_encoder_end_to_end(zoos, tmp_path, kind, encoder):
    run = train(zoos[kind], small(encoder), tmp_path / "run", device="cpu", progress=False, figures=False)
    m = run.metrics
    assert run.step == 6 and set(m.split) >= {"train", "ood"}
    assert np.isfinite(m.loss).all()
    enc, emu = run.load()
    assert (enc is None) == (encoder == "weight-blind")


def test_figures_written(zoos, tmp_path):
    run = train(zoos["mnist"], small("probe-interactive"), tmp_path / "run", device="cpu", progress=False)
    assert {p.name for p in run.path.glob("*.png")} == {"losses.png", "clones.png", "distributions.png", "pca.png"}
    assert {p.name for p in run.path.glob("*.csv")} == {"clones_val.csv", "clones_ood.csv"}


def test_budget_then_resume_equals_uninterrupted(zoos, tmp_path):
    cfg = small("param-transformer", steps=8, eval_every=4, log_every=4, encoder_kwargs={"dropout": 0.1})  # dropout: per-step RNG
    full = train(zoos["fl"], cfg, tmp_path / "full", device="cpu", progress=False, figures=False)
    part = train(zoos["fl"], cfg, tmp_path / "part", device="cpu", progress=False, figures=False, max_steps=3)
    assert part.step == 3
    part = train(zoos["fl"], cfg, tmp_path / "part", device="cpu", resume=True, progress=False, figures=False)
    assert_same_state(last_state(full.path), last_state(part.path))
    assert evals(full.path) == evals(part.path)


def test_sigkill_then_resume_equals_uninterrupted(zoos, tmp_path):
    "A real `rnnws train` process killed mid-run, resumed by a second process, ends where an uninterrupted run ends."
    args = ["--zoo", str(zoos["fl"].root), "--encoder", "flat", "--steps", "240", "--eval-every", "20", "--batch-size", "4",
            "--no-progress", "--no-figures"]
    cmd = [sys.executable, "-m", "rnn_weightspace.cli", "train"]   # the module entry point (as torchrun uses it)
    subprocess.run(cmd + args + ["--out", str(tmp_path / "full")], check=True, env=ENV, capture_output=True)
    p = subprocess.Popen(cmd + args + ["--out", str(tmp_path / "killed")], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck, deadline = tmp_path / "killed" / "checkpoints" / "last.pt", time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if ck.exists() and torch.load(ck, weights_only=True)["step"] >= 40: break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    killed_at = torch.load(ck, weights_only=True)["step"]
    assert 40 <= killed_at < 240, f"the run was not killed mid-way (step {killed_at})"
    r = subprocess.run(cmd + args + ["--out", str(tmp_path / "killed"), "--resume"], env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_state(last_state(tmp_path / "full"), last_state(tmp_path / "killed"))
    assert evals(tmp_path / "full") == evals(tmp_path / "killed")


class _Killed(BaseException):
    "Stands for a SIGKILL between two file writes (a BaseException, so nothing in `train` catches it)."


@pytest.mark.parametrize("kill_after", range(1, 8))
def test_killed_between_any_two_writes_then_resume_equals_uninterrupted(zoos, tmp_path, monkeypatch, kill_after):
    "Each checkpoint writes metrics.jsonl, best.pt and last.pt: stop after any one of them, resume, get the uninterrupted run."
    from rnn_weightspace import training
    cfg = small("layerwise-stats", steps=9, eval_every=3, log_every=3)
    full = train(zoos["fl"], cfg, tmp_path / "full", device="cpu", progress=False, figures=False)
    writes = []
    def counted(fn):
        def wrapper(*args, **kwargs):
            fn(*args, **kwargs)
            writes.append(Path(args[0]).name)
            if len(writes) == kill_after: raise _Killed
        return wrapper
    with monkeypatch.context() as m:
        m.setattr(training, "_save_checkpoint", counted(training._save_checkpoint))
        m.setattr(training, "_write_metrics", counted(training._write_metrics))
        with pytest.raises(_Killed):
            train(zoos["fl"], cfg, tmp_path / "killed", device="cpu", progress=False, figures=False)
    train(zoos["fl"], cfg, tmp_path / "killed", device="cpu", resume=True, progress=False, figures=False)
    assert_same_state(last_state(full.path), last_state(tmp_path / "killed"))
    assert evals(full.path) == evals(tmp_path / "killed"), f"killed after {writes}"
    assert torch.load(full.path / "checkpoints" / "best.pt", weights_only=True)["step"] == \
           torch.load(tmp_path / "killed" / "checkpoints" / "best.pt", weights_only=True)["step"]


def test_nan_stops_and_keeps_last_good_checkpoint(zoos, tmp_path, monkeypatch):
    "A loss that turns NaN (here from the 7th training step on) stops the run with a message naming the step; last.pt stays good."
    import rnn_weightspace.training as T
    real, calls = T.emulation_loss, [0]

    def loss(*args, **kwargs):
        out = real(*args, **kwargs)
        if kwargs.get("reduction", "mean") == "none": return out          # evaluation: untouched
        calls[0] += 1
        return out * float("nan") if calls[0] > 6 else out
    monkeypatch.setattr(T, "emulation_loss", loss)
    with pytest.raises(RNNWSError, match=r"the loss is nan at step 6; stopped\. The last good checkpoint is"):
        train(zoos["fl"], small("layerwise-stats", steps=40, eval_every=2), tmp_path / "run", device="cpu", progress=False, figures=False)
    st = last_state(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in st["encoder"].values())
    steps = [r["step"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    assert max(steps) <= st["step"]


def test_config_errors(zoos, tmp_path):
    with pytest.raises(RNNWSError, match="'divergence' is 'l2'"):
        train_preset("tiny", divergence="l2")
    with pytest.raises(RNNWSError, match="amp"):
        train(zoos["fl"], small("flat", amp=True), tmp_path / "a", device="cpu", progress=False)
    train(zoos["fl"], small("flat"), tmp_path / "b", device="cpu", progress=False, figures=False)
    with pytest.raises(RNNWSError, match="already exists"):
        train(zoos["fl"], small("flat"), tmp_path / "b", device="cpu", progress=False)
    with pytest.raises(RNNWSError, match=r"another config \(fields \['lr'\] differ\)"):
        train(zoos["fl"], small("flat", lr=1.0), tmp_path / "b", device="cpu", resume=True, progress=False)
    with pytest.raises(RNNWSError, match="not a run folder"):
        train(zoos["fl"], small("flat"), tmp_path / "c", device="cpu", resume=True, progress=False)
    (tmp_path / "b" / "checkpoints" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(RNNWSError, match="not a readable checkpoint"):
        train(zoos["fl"], small("flat"), tmp_path / "b", device="cpu", resume=True, progress=False)


def test_cli_flags_override_preset(zoos, tmp_path):
    from rnn_weightspace.cli import main
    assert main(["train", "--zoo", str(zoos["fl"].root), "--encoder", "layerwise-stats", "--preset", "tiny", "--steps", "4", "--lr", "0.0005",
                 "--batch-size", "4", "--out", str(tmp_path / "run"), "--no-progress", "--no-figures"]) == 0
    cfg = Run(tmp_path / "run").config
    assert (cfg.steps, cfg.lr, cfg.batch_size, cfg.preset, cfg.size) == (4, 0.0005, 4, "tiny", "tiny")


def test_early_stopping(zoos, tmp_path):
    "With early_stopping=1 the run stops at the first evaluation that does not improve the val loss."
    run = train(zoos["fl"], small("flat", steps=200, eval_every=2, lr=0.5, early_stopping=1), tmp_path / "run", device="cpu",
                progress=False, figures=False)
    val = run.metrics.query("split == 'val'").loss.tolist()
    assert run.step < 200 and len(val) >= 2 and val[-1] >= min(val[:-1])


def test_your_own_models_train_when_the_zoo_records_its_input_domain(tmp_path):
    "Zoo.from_modules(..., input_domain=...) with stored rollouts: probing encoders and emulation training work on it."
    import torch.nn.functional as F
    from rnn_weightspace.encoders.base import InputDomain, input_domain
    from rnn_weightspace.lstm import LSTMModel, LSTMSpec, LSTMWeights, lstm_forward
    from rnn_weightspace.zoo.reader import Zoo
    torch.manual_seed(0)
    models = [LSTMModel(LSTMSpec(5, 8, 1, 5)) for _ in range(8)]
    w = LSTMWeights.stack([LSTMWeights.from_module(m) for m in models])
    tokens = torch.randint(0, 5, (8, 2, 9), dtype=torch.uint8)                         # [n, R, T]
    logits, _ = lstm_forward(w, F.one_hot(tokens[:, :, :-1].long(), 5).float())       # [n, R, T-1, V]
    zoo = Zoo.from_modules(tmp_path / "mine", models, metadata={"task": ["a", "b"] * 4}, splits={"val": ["b"]},
                           rollouts={"tokens": tokens, "log_probs": logits.log_softmax(-1).half()}, input_domain=InputDomain.tokens(5))
    assert input_domain(zoo) == InputDomain.tokens(5)
    run = train(zoo, train_preset("tiny", encoder="probe-static", steps=4, eval_every=2, batch_size=4), tmp_path / "run",
                device="cpu", progress=False, figures=False)
    assert run.step == 4 and run.embed(zoo).shape == (8, 16)
