"""Stacked runs (`rnn_weightspace.stacked`): every stackable encoder bit-identical to the same run in a stack of its own,
on both zoo kinds and with per-model symmetries; the stack under bfloat16 autocast; a stack interrupted and resumed
(also with runs at different steps), early stopping, a non-finite loss, bad input, and `rnnws train --seeds`."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.runs import Run
from rnn_weightspace.stacked import train_runs, train_stacked
from rnn_weightspace.training import train, train_preset

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def small(encoder, seed=0, **kw):
    return train_preset("tiny", encoder=encoder, seed=seed, **{"steps": 8, "eval_every": 4, "log_every": 2, "batch_size": 4,
                                                               "eval_models": 6, **kw})


def state(run) -> dict:
    return torch.load(Path(run) / "checkpoints" / "last.pt", weights_only=True)


def metrics(run) -> list[dict]:
    return [{k: v for k, v in json.loads(l).items() if k != "seconds"} for l in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def assert_identical(a, b):
    "Two run folders with the same parameters, optimizer state, step and metrics, bit for bit."
    sa, sb = state(a), state(b)
    assert (sa["step"], sa["best"], sa["since_best"]) == (sb["step"], sb["best"], sb["since_best"])
    for part in ("encoder", "emulator"):
        assert sa[part].keys() == sb[part].keys()
        for k in sa[part]: assert torch.equal(sa[part][k], sb[part][k]), (part, k)
    oa, ob = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k in oa[i]: assert torch.equal(oa[i][k], ob[i][k]), (i, k)
    assert metrics(a) == metrics(b)


CASES = [("fl", e, {}) for e in ("layerwise-stats", "flat", "dws", "probe-static", "probe-interactive", "weight-blind")]
CASES += [("mnist", "probe-interactive", {}), ("mnist", "flat", {"augment": "symmetries", "augment_scope": "model"})]


@pytest.mark.parametrize("kind,encoder,kw", CASES, ids=[f"{k}-{e}{'-' + '-'.join(kw.values()) if kw else ''}" for k, e, kw in CASES])
def test_stack_equals_stack_of_one(small_zoos, tmp_path, kind, encoder, kw):
    zoo = small_zoos[kind]
    cfgs = [small(encoder, s, **kw) for s in (0, 1, 2)]
    runs = train_stacked(zoo, cfgs, [tmp_path / f"s{s}" for s in range(3)], device="cpu", progress=False, figures=False)
    alone = train_stacked(zoo, cfgs[1:2], [tmp_path / "alone"], device="cpu", progress=False, figures=False)[0]
    assert [r.step for r in runs] == [8, 8, 8]
    assert_identical(runs[1].path, alone.path)
    single = train(zoo, cfgs[1], tmp_path / "single", device="cpu", progress=False, figures=False)   # fused LSTM kernels: close
    a, c = state(alone.path), state(single.path)
    for part in ("encoder", "emulator"):
        for k in a[part]: torch.testing.assert_close(a[part][k], c[part][k], rtol=1e-4, atol=1e-4)


def test_interrupted_stack_resumes_exactly(small_zoos, tmp_path):
    zoo, cfgs = small_zoos["fl"], [small("flat", s, steps=12) for s in (0, 1, 2)]
    full = train_stacked(zoo, cfgs, [tmp_path / "full" / str(s) for s in range(3)], device="cpu", progress=False, figures=False)
    outs = [tmp_path / "cut" / str(s) for s in range(3)]
    # budgets that end between evaluations (on log steps: the training-loss line averages the steps since the last one,
    # and a resumed run, as with `train`, starts that average afresh)
    part = train_stacked(zoo, cfgs, outs, device="cpu", progress=False, figures=False, max_steps=6)
    assert [r.step for r in part] == [6, 6, 6]
    train_stacked(zoo, cfgs[:1], outs[:1], device="cpu", progress=False, figures=False, max_steps=4, resume=True)   # run 0 ahead
    assert state(outs[0])["step"] == 10
    done = train_stacked(zoo, cfgs, outs, device="cpu", progress=False, figures=False, resume=True)   # two groups: at 6 and at 10
    for a, b in zip(done, full): assert_identical(a.path, b.path)


def test_stacked_run_continues_alone_with_train(small_zoos, tmp_path):
    zoo, cfgs = small_zoos["fl"], [small("layerwise-stats", s) for s in (0, 1)]
    runs = train_stacked(zoo, cfgs, [tmp_path / str(s) for s in range(2)], device="cpu", progress=False, figures=False, max_steps=5)
    r = train(zoo, cfgs[1], runs[1].path, device="cpu", resume=True, progress=False, figures=False)   # train's format
    whole = train_stacked(zoo, cfgs[1:], [tmp_path / "whole"], device="cpu", progress=False, figures=False)[0]
    a, b = state(r.path), state(whole.path)                                   # 5 steps stacked + 3 by train ~ 8 stacked
    assert a["step"] == b["step"] == 8
    for part in ("encoder", "emulator"):
        for k in a[part]: torch.testing.assert_close(a[part][k], b[part][k], rtol=1e-4, atol=1e-4)
    assert [m["step"] for m in metrics(r.path)] == [m["step"] for m in metrics(whole.path)]


def test_early_stopping_leaves_the_stack(small_zoos, tmp_path):
    zoo = small_zoos["fl"]
    cfgs = [small("flat", s, steps=40, eval_every=2, early_stopping=2, lr=0.03) for s in (0, 1, 2)]   # stop at 8, 14, 10
    runs = train_stacked(zoo, cfgs, [tmp_path / str(s) for s in range(3)], device="cpu", progress=False, figures=False)
    steps = [r.step for r in runs]
    assert min(steps) < 40 and len(set(steps)) > 1, steps                      # stopped, at different steps
    for s in (0, 1, 2):
        alone = train_stacked(zoo, cfgs[s:s + 1], [tmp_path / f"alone{s}"], device="cpu", progress=False, figures=False)[0]
        assert_identical(runs[s].path, alone.path)


def test_nonfinite_loss_names_the_run(small_zoos, tmp_path):
    cfgs = [small("flat", s, lr=1e12, clip=None) for s in (0, 1)]
    with pytest.raises(RNNWSError, match=r"the loss is (nan|inf).*the stack stopped"):
        train_stacked(small_zoos["fl"], cfgs, [tmp_path / str(s) for s in range(2)], device="cpu", progress=False, figures=False)
    assert (tmp_path / "0" / "checkpoints" / "best.pt").exists()              # the step-0 checkpoints are kept


def test_bad_input(small_zoos, tmp_path):
    zoo = small_zoos["fl"]
    a, b = small("flat", 0), small("flat", 1)
    with pytest.raises(RNNWSError, match=r"differ in \['lr'\]"):
        train_stacked(zoo, [a, replace(b, lr=0.1)], [tmp_path / "x", tmp_path / "y"], device="cpu")
    with pytest.raises(RNNWSError, match="same run folder"):
        train_stacked(zoo, [a, b], [tmp_path / "x", tmp_path / "x"], device="cpu")
    with pytest.raises(RNNWSError, match="2 configs but 1 run folders"):
        train_stacked(zoo, [a, b], [tmp_path / "x"], device="cpu")
    with pytest.raises(RNNWSError, match="dropout"):
        train_stacked(zoo, [small("param-transformer", 0), small("param-transformer", 1)], [tmp_path / "x", tmp_path / "y"], device="cpu")
    done = train_stacked(zoo, [a], [tmp_path / "done"], device="cpu", progress=False, figures=False)[0]
    with pytest.raises(RNNWSError, match="already exists and holds a run"):     # nothing is created for the other run
        train_stacked(zoo, [b, a], [tmp_path / "new", done.path], device="cpu", progress=False)
    assert not (tmp_path / "new").exists()
    ck = done.path / "checkpoints" / "last.pt"
    ck.write_bytes(ck.read_bytes()[:100])                                         # a corrupted checkpoint: named, nothing written
    with pytest.raises(RNNWSError, match=rf"{ck}: not a readable checkpoint"):
        train_stacked(zoo, [b, a], [tmp_path / "new", done.path], device="cpu", progress=False, resume=[False, True])
    assert not (tmp_path / "new").exists() or not (tmp_path / "new" / "config.json").exists()
    with pytest.raises(RNNWSError, match="cannot train as one stack"):
        train_runs(zoo, [a, a], [tmp_path / "p", tmp_path / "q"], device="cpu", stack="on")
    runs = train_runs(zoo, [small("param-transformer", 0), small("param-transformer", 1)], [tmp_path / "p", tmp_path / "q"],
                      device="cpu", progress=False, figures=False)                 # one by one
    assert [r.step for r in runs] == [8, 8]


def test_cli_train_seeds(small_zoos, tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "rnn_weightspace.cli", "train", "--zoo", str(small_zoos["fl"].root), "--encoder", "flat",
           "--out", str(out), "--seeds", "0-2", "--steps", "4", "--eval-every", "2", "--batch-size", "4", "--device", "cpu",
           "--stack", "on", "--no-progress", "--no-figures", "--tensorboard"]
    p = subprocess.run(cmd + ["--max-steps", "3"], capture_output=True, text=True, env=ENV, timeout=300)   # a budget, then resumed
    assert p.returncode == 0, p.stderr
    assert [Run(out / f"seed{s}").step for s in range(3)] == [3, 3, 3]
    p = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    assert sorted(d.name for d in out.iterdir()) == ["seed0", "seed1", "seed2"]
    assert [(Run(out / f"seed{s}").config.seed, Run(out / f"seed{s}").step) for s in range(3)] == [(0, 4), (1, 4), (2, 4)]
    assert all(any((out / f"seed{s}" / "tensorboard").iterdir()) for s in range(3))
    for bad, why in ((["--seeds", "2-1"], "--seeds"), (["--seeds", "0-2", "--seed", "3"], "not both"), (["--stack", "on"], "give --seeds")):
        p = subprocess.run(cmd[:8] + ["--out", str(tmp_path / "bad"), "--device", "cpu"] + bad, capture_output=True, text=True, env=ENV, timeout=60)
        assert p.returncode != 0 and why in p.stderr, (bad, p.stderr[-500:])
    assert not (tmp_path / "bad").exists()


def test_study_trains_seeds_as_one_stack(small_zoos, tmp_path):
    from rnn_weightspace.study import STUDY_PRESETS, _train_config, _train_stage
    (tmp_path / "zoos").mkdir()
    (tmp_path / "zoos" / "formal-languages").symlink_to(Path(small_zoos["fl"].root).resolve())
    cfg = replace(STUDY_PRESETS["tiny"], zoo_kinds=("formal-languages",), encoders=("flat", "param-transformer"), seeds=2, stack="on",
                  workers=1, train_overrides={"steps": 4, "eval_every": 2, "log_every": 2, "batch_size": 4, "eval_models": 6})
    lines = []
    _train_stage(tmp_path, cfg, "cpu", lines.append)
    assert sum("(one stack)" in l for l in lines) == 1 and sum("param-transformer-seed" in l for l in lines) == 2, lines
    runs = tmp_path / "runs" / "formal-languages"
    alone = train_stacked(small_zoos["fl"], [_train_config(cfg, "flat", 1)], [tmp_path / "alone"], device="cpu", progress=False, figures=False)
    assert_identical(runs / "flat-seed1", alone[0].path)
    assert (runs / "flat-seed0" / "losses.png").exists() and not (runs / "flat-seed1" / "losses.png").exists()   # figures: seed 0
    before = (runs / "flat-seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    _train_stage(tmp_path, cfg, "cpu", lines.append)                           # finished runs are not trained again
    assert (runs / "flat-seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("encoder", ["flat", "probe-interactive"])
def test_stack_equals_stack_of_one_on_cuda(small_zoos, encoder):
    import importlib.util
    spec = importlib.util.spec_from_file_location("stacked_runs", Path(__file__).resolve().parents[1] / "benchmarks" / "stacked_runs.py")
    sr = importlib.util.module_from_spec(spec); spec.loader.exec_module(sr)
    r = sr.identity(str(small_zoos["fl"].root), encoder, "tiny", "cuda")
    assert r["equal"], r


@pytest.mark.parametrize("encoder", ["layerwise-stats", "flat", "dws", "probe-static", "probe-interactive", "weight-blind"])
def test_stack_under_bf16_autocast(small_zoos, tmp_path, encoder):
    "The stack's forward and backward under bfloat16 autocast: on the CPU here, standing in for `amp` on CUDA (dtype errors show on both)."
    from rnn_weightspace.stacked import _Stack, _StackedRun, _stacked_batch
    from rnn_weightspace.training import _zoo_fingerprint
    zoo = small_zoos["fl"]
    cfgs = [small(encoder, s) for s in (0, 1)]
    rs = [_StackedRun(zoo, zoo, _zoo_fingerprint(zoo), c, tmp_path / str(c.seed), torch.device("cpu"), False, False) for c in cfgs]
    stack = _Stack([r.pair for r in rs], [r.opt for r in rs], cfgs[0])
    w, b = _stacked_batch([r.batch(0, zoo.spec, torch.device("cpu")) for r in rs])
    full = stack.losses(w, b).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16): low = stack.losses(w, b)
    low.sum().backward()
    assert low.shape == (2,) and torch.isfinite(low).all()
    assert not torch.equal(low.detach().float(), full)                                   # bfloat16 was used...
    assert (low.detach().float() - full).abs().max() < 0.05 * full.abs().max(), (low, full)   # ...and kept the loss (3e-5 apart here)
    grads = [p.grad for p in stack.params.values() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
