"""`rnnws train` / `train(...)` on bad input: one-line errors, nothing created before the input is known to be good,
nothing lost, and nothing left behind that blocks a plain rerun. Tiny zoos (4 runs x 2 checkpoints), 2-4 step runs."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from rnn_weightspace.cli import main
from rnn_weightspace.core import RNNWSError
from rnn_weightspace.runs import Run
from rnn_weightspace.training import train, train_preset
from rnn_weightspace.zoo.reader import Zoo

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FAST = ["--steps", "4", "--eval-every", "2", "--batch-size", "2", "--no-progress", "--no-figures"]


@pytest.fixture(scope="module")
def zoos(tmp_path_factory):
    "Two tiny zoos that differ only in their seed."
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    d = tmp_path_factory.mktemp("zoos")
    cfg = replace(FormalLanguageZooConfig(), n_runs=4, steps=20, checkpoints=(0, 20), lr_steps=(0, 20), lr_values=(0.01, 0.003),
                  eval_samples=10, n_rollouts=2, runs_per_shard=2, preset="test")
    return {s: build_zoo(replace(cfg, seed=s), d / f"zoo{s}", workers=1, progress=False) for s in (0, 1)}


@pytest.fixture(scope="module")
def started(zoos, tmp_path_factory):
    "A run on zoo 0 stopped after 2 of its 4 steps (resumable); tests copy it."
    out = tmp_path_factory.mktemp("runs") / "started"
    assert main(["train", "--zoo", str(zoos[0].root), "--encoder", "flat", "--out", str(out), "--max-steps", "2", *FAST]) == 0
    return out


def cli(capsys, *args) -> tuple[int, str]:
    "`rnnws train ARGS` in this process: the exit status and stderr."
    capsys.readouterr()
    code = main(["train", *map(str, args)])
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rnnws: error: "), (code, err)
    return lines[0]


def copy_run(started: Path, dst: Path) -> Path:
    shutil.copytree(started, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def small(**kw):
    return train_preset("tiny", **{"encoder": "flat", "steps": 4, "eval_every": 2, "batch_size": 2, **kw})


# 1. read-only run folder, or parent ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["folder", "parent", "resume", "checkpoints"])
def test_read_only_out(zoos, started, tmp_path, capsys, where, read_only):
    ro = tmp_path / "ro"
    if where == "folder": ro.mkdir(); out, resume = ro, False
    elif where == "parent": ro.mkdir(); out, resume = ro / "run", False
    else:
        out, resume = copy_run(started, tmp_path / "run"), True
        ro = out if where == "resume" else out / "checkpoints"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    last = (out / "checkpoints" / "last.pt").read_bytes() if resume else None
    with read_only(ro):
        msg = one_line_error(*cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST, *(["--resume"] if resume else [])))
        with pytest.raises(RNNWSError, match="cannot write in") as e:                              # the library on its own
            train(zoos[0], small(), out, device="cpu", resume=resume, progress=False, figures=False)
    assert str(ro) in msg and "cannot write in" in msg, msg
    assert str(ro) in str(e.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before               # nothing created
    if last is not None: assert (out / "checkpoints" / "last.pt").read_bytes() == last


# 2. --out is a file ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("resume", [False, True])
def test_out_is_a_file(zoos, tmp_path, capsys, resume):
    f = tmp_path / "notes.txt"
    f.write_text("precious")
    for out in (f, f / "run"):
        msg = one_line_error(*cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST, *(["--resume"] if resume else [])))
        assert str(f) in msg and ("is a file" in msg or "is not a folder" in msg), msg
        with pytest.raises(RNNWSError, match="is a file") as e:                                      # the library on its own
            train(zoos[0], small(), out, device="cpu", resume=resume, progress=False, figures=False)
        assert str(f) in str(e.value)
    assert f.read_text() == "precious" and sorted(tmp_path.iterdir()) == [f]


# 3. malformed config.json on --resume -------------------------------------------------------------------------------------------
def _edit(info: dict, what: str):
    if what == "not JSON": return "{config: "
    if what == "a list": return [info]
    if what == "no config": return {k: v for k, v in info.items() if k != "config"}
    if what == "config not an object": return {**info, "config": "flat"}
    if what == "unknown field": return {**info, "config": {**info["config"], "lrr": 1}}
    if what == "lr a string": return {**info, "config": {**info["config"], "lr": "fast"}}
    if what == "encoder a list": return {**info, "config": {**info["config"], "encoder": ["flat"]}}
    if what == "steps a float": return {**info, "config": {**info["config"], "steps": 4.0}}
    if what == "lr missing": return {**info, "config": {k: v for k, v in info["config"].items() if k != "lr"}}
    if what == "no zoo path": return {**info, "zoo": {k: v for k, v in info["zoo"].items() if k != "path"}}
    if what == "fingerprint a number": return {**info, "zoo": {**info["zoo"], "fingerprint": 7}}
    raise ValueError(what)

BAD_CONFIGS = {"not JSON": "not valid JSON", "a list": "not a run config", "no config": "field 'config' is missing",
               "config not an object": "field 'config' must be a JSON object", "unknown field": "unknown train config fields ['lrr']",
               "lr a string": "field 'lr' must be a positive number", "encoder a list": "field 'encoder' must be a string",
               "steps a float": "field 'steps' must be a positive integer", "no zoo path": "field 'zoo.path' is missing",
               "fingerprint a number": "field 'zoo.fingerprint' must be a string",
               "lr missing": "another config (fields ['lr'] differ)"}    # a missing field takes its default (older runs)

@pytest.mark.parametrize("what", BAD_CONFIGS)
def test_malformed_run_config(zoos, started, tmp_path, capsys, what):
    out = copy_run(started, tmp_path / "run")
    f = out / "config.json"
    new = _edit(json.loads(f.read_text()), what)
    f.write_text(new if isinstance(new, str) else json.dumps(new))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    msg = one_line_error(*cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST, "--resume"))
    assert msg.startswith(f"rnnws: error: {f}: ") and BAD_CONFIGS[what] in msg, msg
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    if what != "lr missing":
        with pytest.raises(RNNWSError, match=BAD_CONFIGS[what].replace("[", r"\[").replace("]", r"\]")): Run(out)


# 4. --resume with another zoo ---------------------------------------------------------------------------------------------------
def test_resume_on_another_zoo_is_refused(zoos, started, tmp_path, capsys):
    out = copy_run(started, tmp_path / "run")
    last = (out / "checkpoints" / "last.pt").read_bytes()
    msg = one_line_error(*cli(capsys, "--zoo", zoos[1].root, "--encoder", "flat", "--out", out, *FAST, "--resume"))
    assert f"started on zoo {zoos[0].root.resolve()}" in msg and f"not on {zoos[1].root.resolve()}" in msg and "--zoo" in msg, msg
    assert (out / "checkpoints" / "last.pt").read_bytes() == last
    moved = Path(shutil.copytree(zoos[0].root, tmp_path / "moved"))                                # the same zoo elsewhere: fine
    assert cli(capsys, "--zoo", moved, "--encoder", "flat", "--out", out, *FAST, "--resume")[0] == 0
    assert Run(out).step == 4


def test_resume_of_a_run_without_fingerprint(zoos, started, tmp_path, capsys):
    "Runs started before fingerprints were recorded: the zoo's folder must match; resuming records the fingerprint."
    out = copy_run(started, tmp_path / "run")
    f = out / "config.json"
    info = json.loads(f.read_text())
    fp = info["zoo"].pop("fingerprint")
    f.write_text(json.dumps(info))
    msg = one_line_error(*cli(capsys, "--zoo", zoos[1].root, "--encoder", "flat", "--out", out, *FAST, "--resume"))
    assert "started on zoo" in msg, msg
    assert cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST, "--resume")[0] == 0
    assert json.loads(f.read_text())["zoo"]["fingerprint"] == fp


# 5. a failed start leaves nothing that blocks a plain rerun ---------------------------------------------------------------------
@pytest.mark.parametrize("case", ["encoder option", "emulator option", "rollouts", "no zoo", "bad encoder"])
def test_bad_input_creates_nothing(zoos, tmp_path, capsys, case):
    cfg = small(**{"encoder option": {"encoder_kwargs": {"bogus": 1}}, "emulator option": {"emulator_kwargs": {"bogus": 1}},
                   "rollouts": {"rollouts_per_model": 5}}.get(case, {})).to_dict()
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    zoo = tmp_path / "nowhere" if case == "no zoo" else zoos[0].root
    out = tmp_path / "a" / "run"
    args = ["--zoo", zoo, "--encoder", "cnn" if case == "bad encoder" else "flat", "--out", out, "--config", tmp_path / "cfg.json", *FAST]
    msg = one_line_error(*cli(capsys, *args))
    assert {"encoder option": "'encoder_kwargs' does not fit flat", "emulator option": "'emulator_kwargs' does not fit",
            "rollouts": "'rollouts_per_model'", "no zoo": "no such zoo folder", "bad encoder": "'encoder' is 'cnn'"}[case] in msg, msg
    assert not (tmp_path / "a").exists()


def test_failure_before_the_first_checkpoint_then_plain_rerun(zoos, tmp_path, monkeypatch):
    "A run that dies after writing config.json but before checkpoints/last.pt: the plain command runs again."
    from rnn_weightspace import training
    def boom(*a, **k): raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(training, "evaluate", boom)
        with pytest.raises(KeyboardInterrupt): train(zoos[0], small(), tmp_path / "run", device="cpu", progress=False, figures=False)
    assert (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / "checkpoints").exists()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 0, "split": "val", "loss": 9.0}\n')      # leftovers of a killed start
    (tmp_path / "run" / "checkpoints").mkdir(); (tmp_path / "run" / "checkpoints" / "best.pt").write_bytes(b"stale")
    run = train(zoos[0], small(lr=1e-3), tmp_path / "run", device="cpu", progress=False, figures=False)   # another config is fine
    assert run.step == 4 and run.config.lr == 1e-3
    assert 9.0 not in run.metrics.loss.tolist()
    torch.load(run.path / "checkpoints" / "best.pt", weights_only=True)


def test_a_folder_with_other_files_is_left_alone(zoos, started, tmp_path, capsys):
    (tmp_path / "mine").mkdir(); (tmp_path / "mine" / "keep.txt").write_text("precious")
    msg = one_line_error(*cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", tmp_path / "mine", *FAST))
    assert "already exists and is not a run folder" in msg and "keep.txt" in msg, msg
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"
    out = copy_run(started, tmp_path / "run")                                                         # 7: CLI words
    msg = one_line_error(*cli(capsys, "--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST))
    assert "already exists and holds a run; pass --resume" in msg, msg


# 6. checkpoints that torch.load(weights_only=True) refuses, truncated, or not a run's ---------------------------------------------
class Evil:
    def __init__(self, marker: Path): self.marker = marker
    def __reduce__(self): return (Path.touch, (self.marker,))


@pytest.mark.parametrize("case", ["pickle", "truncated", "not a run's", "another encoder"])
def test_bad_checkpoint(zoos, started, tmp_path, capsys, case):
    out = copy_run(started, tmp_path / "run")
    ck = out / "checkpoints" / "last.pt"
    marker = tmp_path / "code-was-run"
    if case == "pickle": torch.save({"step": 2, "payload": Evil(marker)}, ck)
    elif case == "truncated": ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    elif case == "not a run's": torch.save({"weights": torch.zeros(3)}, ck)
    else:
        other = train(zoos[0], small(encoder="layerwise-stats"), tmp_path / "other", device="cpu", progress=False, figures=False, max_steps=2)
        shutil.copy(other.path / "checkpoints" / "last.pt", ck)
    args = ["--zoo", zoos[0].root, "--encoder", "flat", "--out", out, *FAST, "--resume"]
    if case == "pickle":                                            # a real process: exit status 2 and one line on stderr
        r = subprocess.run([sys.executable, "-m", "rnn_weightspace.cli", "train", *map(str, args)], env=ENV, capture_output=True, text=True)
        msg = one_line_error(r.returncode, r.stderr)
    else: msg = one_line_error(*cli(capsys, *args))
    assert msg.startswith(f"rnnws: error: {ck}: "), msg
    assert {"pickle": "refuses (Unsupported global", "truncated": "truncated or corrupt", "not a run's": "missing ['step'",
            "another encoder": "its encoder does not fit"}[case] in msg, msg
    assert not marker.exists()


# 8. non-finite weights in the zoo -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val"])
def test_nonfinite_weights_are_named(zoos, tmp_path, split):
    "A zoo whose shard holds NaN/Inf weights (its checksum updated, as a zoo written that way would have): one line naming the row."
    import hashlib
    dst = Path(shutil.copytree(zoos[0].root, tmp_path / "zoo"))
    row = int(Zoo(dst).split(split).rows[0])
    f = dst / "shards" / f"{row // 4:05d}.weights.safetensors"                         # 2 runs x 2 checkpoints per shard
    t = load_file(f)
    for k in t: t[k][row % 4] = np.inf if split == "val" else np.nan
    save_file(t, f)
    m = json.loads((dst / "manifest.json").read_text())
    m["shards"][row // 4]["files"]["weights"].update(bytes=f.stat().st_size, sha256=hashlib.sha256(f.read_bytes()).hexdigest())
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RNNWSError, match=rf"row {row}\b.* holds NaN/Inf weights") as e:      # refused when read (zoo.reader)
        train(Zoo(dst), small(steps=20, eval_every=10), tmp_path / "run", device="cpu", progress=False, figures=False)
    assert "\n" not in str(e.value)
    last = tmp_path / "run" / "checkpoints" / "last.pt"                               # val: refused at the step-0 evaluation
    assert not last.exists() if split == "val" else torch.load(last, weights_only=True)["step"] == 0   # train: step 0 is kept
