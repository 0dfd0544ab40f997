"""`import_official` (`rnnws zoo import-official`) on broken released folders: every problem is one error line naming the
file and the field, and the output folder is left so that a rerun works (nothing there, no temporary folder next to it)."""
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.zoo.format import ZooFormatError
from rnn_weightspace.zoo.reader import Zoo
from rnn_weightspace.zoo.official import import_official, open_official, read_official, write_official_fixture

STEPS = (0, 100, 200)                                  # 3 checkpoints per run, 2 runs: 6 rows per folder
FL, MN = "formal-languages", "sequential-mnist"


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    "One tiny valid folder per kind in the released layout, written once; each test corrupts a copy."
    root = tmp_path_factory.mktemp("official")
    for kind in (FL, MN): write_official_fixture(root / kind, kind, n_runs=2, steps=STEPS, invocations=1)
    return root


@pytest.fixture
def folder(valid, tmp_path):
    "Copy a valid folder of `kind` to `tmp_path/src`; returns (src, out)."
    def copy(kind, name="src"):
        shutil.copytree(valid / kind, tmp_path / name)
        return tmp_path / name, tmp_path / f"{name}-work" / "out"  # `*-work` does not exist yet: the import must not leave it behind
    return copy


# --- corruptions: each takes the folder and changes one thing ------------------------------------------------------------
def edit(name, f):
    "Load `name`.npy, apply `f` to the array, save the result (f may change shape and dtype)."
    def go(src):
        np.save(src / f"{name}.npy", f(np.load(src / f"{name}.npy")))
    return go

def setrow(name, row, value, dtype=None):
    def f(a):
        a = a.astype(dtype) if dtype else a.copy()
        a[row] = value
        return a
    return edit(name, f)

def args(change):
    "Rewrite args.json: `change` is a dict of fields to set (None: delete) or a callable returning the new text."
    def go(src):
        if callable(change): (src / "args.json").write_text(change(json.loads((src / "args.json").read_text())))
        else:
            a = json.loads((src / "args.json").read_text())
            for k, v in change.items():
                if v is None: a.pop(k)
                else: a[k] = v
            (src / "args.json").write_text(json.dumps(a))
    return go

def write(name, data):
    def go(src): (src / name).unlink(); (src / name).write_bytes(data)
    return go

def make_dir(name):
    def go(src): (src / name).unlink(); (src / name).mkdir()
    return go

def remove(name):
    return lambda src: (src / name).unlink()

class Evil:  # a pickle that would create a file if anything unpickled it
    def __reduce__(self): return (os.mkdir, (str(Path(os.environ.get("RNNWS_TEST_EVIL", "/nonexistent")) / "pwned"),))

def evil_pickle(name):
    def go(src): (src / name).write_bytes(pickle.dumps(Evil()))
    return go

def object_npy(name):
    def go(src): np.save(src / name, np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
    return go

def lagging_header(name):
    def go(src):
        a = np.load(src / name)
        with open(src / name, "wb") as f:
            header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False, "shape": (len(a) - 1, *a.shape[1:])}
            np.lib.format.write_array_header_1_0(f, header)
            f.write(a.tobytes())
    return go


# (id, kind, corruption, substrings the ZooFormatError's message must contain)
CASES = [
    # args.json
    ("args-not-json", FL, args(lambda a: "{'seed': 1,"), ["args.json", "not valid JSON"]),
    ("args-not-utf8", FL, write("args.json", b"\xff\xfe{}"), ["args.json", "not valid JSON"]),
    ("args-deep-nesting", FL, write("args.json", b"[" * 100_000), ["args.json", "not valid JSON"]),
    ("args-nan", FL, args(lambda a: json.dumps({**a, "random_seq_prob": float("nan")})), ["args.json", "NaN"]),
    ("args-not-object", FL, args(lambda a: json.dumps(list(a.items()))), ["args.json", "expected an object"]),
    ("args-missing-key", FL, args({"rnn_hidden_size": None}), ["args.json", "'rnn_hidden_size' is missing"]),
    ("args-missing-key-mnist", MN, args({"tile_size": None}), ["args.json", "'tile_size' is missing"]),
    ("args-string-for-int", FL, args({"sequence_length": "42"}), ["args.json", "'sequence_length' must be an integer", "'42'"]),
    ("args-float-for-int", FL, args({"num_training_runs": 2.5}), ["args.json", "'num_training_runs' must be an integer"]),
    ("args-bool-for-int", FL, args({"num_tokens": True}), ["args.json", "'num_tokens' must be an integer"]),
    ("args-list-for-number", FL, args({"random_seq_prob": [0.5]}), ["args.json", "'random_seq_prob' must be a finite number"]),
    ("args-huge-float", FL, args(lambda a: json.dumps(a)[:-1] + ', "random_seq_prob": 1e999}'), ["args.json", "'random_seq_prob'"]),
    ("args-wrong-length", FL, args({"sequence_length": 22}), ["args.json", "'sequence_length' is 22", "42"]),
    ("args-wrong-hidden", MN, args({"rnn_hidden_size": 64}), ["args.json", "'rnn_hidden_size' is 64"]),
    ("args-wrong-tile", MN, args({"tile_size": 7}), ["args.json", "'tile_size' is 7"]),
    ("args-scalar-input", FL, args({"one_hot_input": 0}), ["args.json", "'one_hot_input' is 0"]),
    ("args-is-folder", FL, make_dir("args.json"), ["args.json", "is a folder"]),
    # tasks.npy
    ("tasks-1d", FL, edit("tasks", lambda a: a[:, 1]), ["tasks.npy", "shape (6,)", "expected (6, 4)"]),
    ("tasks-float", FL, edit("tasks", lambda a: a.astype(np.float64)), ["tasks.npy", "dtype float64", "integer"]),
    ("tasks-width", FL, edit("tasks", lambda a: a[:, :3]), ["tasks.npy", "shape (6, 3)"]),
    ("tasks-rows", FL, edit("tasks", lambda a: a[:5]), ["tasks.npy", "shape (5, 4)", "parameters.npy has 6 rows"]),
    ("tasks-offset", FL, setrow("tasks", slice(0, 3), [0, 7, 0, 0]), ["tasks.npy", "row 0", "[0, 7, 0, 0]"]),
    ("tasks-d0", FL, setrow("tasks", slice(3, 6), [1, 0, 0, 0]), ["tasks.npy", "row 3"]),
    ("tasks-change-in-run", FL, setrow("tasks", 4, [0, 2, 2, 2]), ["tasks.npy", "task changes within run 1"]),
    ("angle-nan", MN, setrow("tasks", 2, np.nan), ["tasks.npy", "row 2", "angle nan"]),
    ("angle-range", MN, setrow("tasks", 1, 400.0), ["tasks.npy", "row 1", "angle 400.0"]),
    ("angle-change-in-run", MN, setrow("tasks", 1, 3.0), ["tasks.npy", "task changes within run 0"]),
    ("angle-2d-wide", MN, edit("tasks", lambda a: np.repeat(a, 2, 1)), ["tasks.npy", "shape (6, 2)", "expected (6, 1)"]),
    ("angle-text", MN, edit("tasks", lambda a: a.astype("U8")), ["tasks.npy", "dtype <U8"]),
    # num_step_correct.npy / num_step.npy / accuracy_losses.npy
    ("nsc-1-column", FL, edit("num_step_correct", lambda a: a[:, :1]), ["num_step_correct.npy", "shape (6, 1)", "expected (6, 3)"]),
    ("nsc-nan", FL, setrow("num_step_correct", 2, np.nan, np.float64), ["num_step_correct.npy", "dtype float64", "integer"]),
    ("nsc-rows", FL, edit("num_step_correct", lambda a: a[:-1]), ["num_step_correct.npy", "parameters.npy has 6 rows"]),
    ("nsc-correct", FL, setrow("num_step_correct", 4, [0, 100, 1001]), ["num_step_correct.npy", "row 4", "column 2", "1001"]),
    ("nsc-negative-step", FL, setrow("num_step_correct", 1, [0, -5, 3]), ["num_step_correct.npy", "row 1", "step -5"]),
    ("nsc-starts-mid-run", FL, edit("num_step_correct", lambda a: np.roll(a, 1, 0)), ["num_step_correct.npy", "row 0 has step 200"]),
    ("nsc-step-order", FL, setrow("num_step_correct", 2, [0, 150, 3]), ["num_step_correct.npy", "steps (column 1)"]),
    ("nsc-lagging-header", FL, lagging_header("num_step_correct.npy"), ["num_step_correct.npy", "header says 5 rows"]),
    ("num-step-3-columns", MN, edit("num_step", lambda a: np.concatenate([a, a[:, :1]], 1)), ["num_step.npy", "shape (6, 3)"]),
    ("acc-nan", MN, setrow("accuracy_losses", 3, [0.5, np.nan, 1.0, 0.0]), ["accuracy_losses.npy", "row 3", "column 1 (train loss)"]),
    ("acc-over-1", MN, setrow("accuracy_losses", 0, [1.5, 1.0, 1.0, 0.0]), ["accuracy_losses.npy", "row 0", "column 0 (eval accuracy)"]),
    ("acc-columns", MN, edit("accuracy_losses", lambda a: a[:, :3]), ["accuracy_losses.npy", "shape (6, 3)", "expected (6, 4)"]),
    ("acc-wd-changes", MN, edit("accuracy_losses", lambda a: np.concatenate([a[:, :3], np.arange(6.0)[:, None] / 10], 1)),
     ["accuracy_losses.npy", "weight decay changes within run 0"]),
    # parameters.npy
    ("params-nan", FL, setrow("parameters", 4, np.nan), ["parameters.npy", "row 4 (run 1, step 100)", "NaN"]),
    ("params-inf-one-value", MN, edit("parameters", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 5 * a.shape[1] + 9, np.inf, a)),
     ["parameters.npy", "row 5 (run 1, step 200)", "infinite"]),
    ("params-float64-overflow", FL, setrow("parameters", 2, 1e39, np.float64), ["parameters.npy", "row 2 (run 0, step 200)"]),
    ("params-int", FL, edit("parameters", lambda a: a.astype(np.int32)), ["parameters.npy", "dtype int32"]),
    ("params-1d", FL, edit("parameters", lambda a: a[:, 0]), ["parameters.npy", "shape (6,)"]),
    ("params-width", FL, edit("parameters", lambda a: a[:, :-1]), ["parameters.npy", "13765 parameters per row"]),
    ("params-other-kind", FL, lambda src: shutil.copy(src.parent / "mnist_params.npy", src / "parameters.npy"),
     ["parameters.npy", "15178 parameters per row is not a released formal-languages model"]),
    ("params-empty", FL, edit("parameters", lambda a: a[:0]), ["parameters.npy", "holds no rows"]),
    ("params-structured", FL, edit("parameters", lambda a: np.zeros(6, dtype=[("x", "f4"), ("y", "f4")])), ["parameters.npy", "dtype"]),
    ("params-pickle", FL, evil_pickle("parameters.npy"), ["parameters.npy", "not a valid .npy file"]),
    ("params-object", FL, object_npy("parameters.npy"), ["parameters.npy", "Python objects"]),
    ("params-text", FL, write("parameters.npy", b"1,2,3\n4,5,6\n"), ["parameters.npy", "not a valid .npy file"]),
    ("params-empty-file", FL, write("parameters.npy", b""), ["parameters.npy", "not a valid .npy file"]),
    ("params-truncated", FL, lambda src: (src / "parameters.npy").write_bytes((src / "parameters.npy").read_bytes()[:-10]),
     ["parameters.npy", "truncated or corrupt"]),
    ("params-folder", FL, make_dir("parameters.npy"), ["parameters.npy", "is a folder"]),
    ("params-missing", MN, remove("parameters.npy"), ["parameters.npy", "file is missing"]),
    # sequences.npy / logits.npy
    ("logits-missing", FL, remove("logits.npy"), ["logits.npy", "file is missing"]),
    ("tokens-range", FL, setrow("sequences", 5, 9), ["sequences.npy", "row 5 (run 1, step 200)", "token ids outside 0-5"]),
    ("tokens-negative", FL, setrow("sequences", 0, -1), ["sequences.npy", "row 0", "token ids"]),
    ("tokens-float", FL, edit("sequences", lambda a: a.astype(np.float16)), ["sequences.npy", "dtype float16"]),
    ("tokens-too-short", FL, edit("sequences", lambda a: a[:, :, :1]), ["sequences.npy", "length 1"]),
    ("logits-length", FL, edit("logits", lambda a: a[:, :, :-1]), ["logits.npy", "shape (6, 100, 40, 6)", "expected (6, 100, 41, 6)"]),
    ("logits-nan", FL, setrow("logits", 3, np.nan), ["logits.npy", "row 3 (run 1, step 0)", "NaN"]),
    ("mnist-inputs-nan", MN, setrow("sequences", 2, np.nan), ["sequences.npy", "row 2", "NaN or infinite inputs"]),
    ("mnist-logits-inf", MN, setrow("logits", 1, np.inf), ["logits.npy", "row 1", "NaN or infinite logits"]),
    ("mnist-tile-width", MN, edit("sequences", lambda a: a[..., :15]), ["sequences.npy", "expected (6, *, *, 16)"]),
    # the folder itself
    ("both-step-files", FL, lambda src: shutil.copy(src / "num_step_correct.npy", src / "num_step.npy"), ["num_step.npy", "both"]),
    ("no-step-file", MN, remove("num_step.npy"), ["not a released zoo folder"]),
]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def check_failed_import(src: Path, out: Path, kind: str, err: type, needles: list[str], **kw) -> str:
    "Import must fail with `err`, one line containing `needles`, leaving the tree around `out` as it was."
    before = files(src.parent)
    with pytest.raises(err) as e: import_official(src, out, **kw)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles: assert n in msg, f"{n!r} not in {msg!r}"
    assert files(src.parent) == before                                      # nothing created (or all of it removed)
    return msg


@pytest.mark.parametrize("name,kind,corrupt,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(folder, valid, tmp_path, monkeypatch, name, kind, corrupt, needles):
    src, out = folder(kind)
    monkeypatch.setenv("RNNWS_TEST_EVIL", str(tmp_path))
    if name == "params-other-kind": shutil.copy(valid / MN / "parameters.npy", tmp_path / "mnist_params.npy")
    corrupt(src)
    check_failed_import(src, out, kind, ZooFormatError, needles, runs_per_shard=1)
    assert not (tmp_path / "pwned").exists()                                 # the pickle was never loaded
    if name in ("params-nan", "tokens-range"):                              # found while converting: the second shard
        shutil.rmtree(src); shutil.copytree(valid / kind, src)             # fixed input: the rerun works
        assert len(import_official(src, out, runs_per_shard=1)) == 6


def test_valid_fixture_imports(folder):
    "The uncorrupted copies import (so each case above fails for its own corruption), also big-endian and float64 files."
    for kind in (FL, MN):
        src, out = folder(kind, kind)
        for n in ("parameters", "tasks"):
            a = np.load(src / f"{n}.npy"); np.save(src / f"{n}.npy", a.astype(a.dtype.newbyteorder(">")))
        a = np.load(src / "parameters.npy"); np.save(src / "parameters.npy", a.astype(np.float64))
        zoo = import_official(src, out)
        assert len(zoo) == 6 and zoo.manifest["config"]["args"]["rnn_hidden_size"] == 32
        assert np.array_equal(zoo.weights[:].flatten().numpy(), a.astype(np.float32))
        assert [p.name for p in out.parent.iterdir()] == ["out"]            # no temporary folder left


def test_args_json_is_optional(folder):
    src, out = folder(FL)
    (src / "args.json").unlink()
    assert import_official(src, out).manifest["config"]["args"] == {}


def test_out_must_be_new(folder):
    src, out = folder(FL)
    out.mkdir(parents=True)
    import_official(src, out)                                               # an empty folder is fine
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    msg = check_failed_import(src, out, FL, RNNWSError, [str(out), "already exists (a folder that is not empty)"])   # a second import does not touch the first
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out.parent / "file").write_text("x")
    check_failed_import(src, out.parent / "file", FL, RNNWSError, ["file: already exists (a file)"])
    check_failed_import(src, out.parent / "file" / "zoo", FL, RNNWSError, ["is a file"])
    for kw, needle in (({"runs_per_shard": 0}, "runs_per_shard"), ({"seed": "1"}, "seed"), ({"runs_per_shard": True}, "runs_per_shard")):
        check_failed_import(src, out.parent / "new", FL, RNNWSError, [needle], **kw)
    check_failed_import(out.parent / "nowhere", out.parent / "new", FL, ZooFormatError, ["nowhere: no such folder"])
    check_failed_import(src / "tasks.npy", out.parent / "new", FL, ZooFormatError, ["tasks.npy: is a file"])
    check_failed_import(out, out.parent / "new", FL, ZooFormatError, ["not a released zoo folder"])


def test_interrupted_import_leaves_nothing(folder, monkeypatch):
    "Ctrl-C (or a crash) in the middle of writing shards: the partial output is removed and the rerun works."
    from rnn_weightspace.zoo import format as zf
    src, out = folder(FL)
    real = zf.ZooWriter.write_shard
    def interrupt(self, index, *a, **kw):
        if index == 1: raise KeyboardInterrupt
        return real(self, index, *a, **kw)
    monkeypatch.setattr(zf.ZooWriter, "write_shard", interrupt)
    check_failed_import(src, out, FL, KeyboardInterrupt, [], runs_per_shard=1)
    monkeypatch.setattr(zf.ZooWriter, "write_shard", real)
    assert len(Zoo(import_official(src, out, runs_per_shard=1).root, verify=True)) == 6


def test_open_official_refuses_bad_rows(folder):
    "Opened in place, a released folder is checked the same way; NaN rows are refused when read."
    src, _ = folder(FL)
    setrow("parameters", 4, np.nan)(src)
    zoo = open_official(src)
    zoo.weights[3]
    with pytest.raises(ZooFormatError, match=r"parameters.npy: row 4 \(run 1, step 100\) holds NaN"): zoo.weights[4]
    edit("tasks", lambda a: a[:, 0])(src)
    with pytest.raises(ZooFormatError, match="tasks.npy: shape"): read_official(src)


def test_cli_one_line(folder):
    src, out = folder(FL)
    edit("tasks", lambda a: a[:, 0])(src)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "rnn_weightspace.cli", "zoo", "import-official", str(src), "--out", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnws: error:") and "tasks.npy: shape (6,)" in lines[0], r.stderr
    assert not out.parent.exists()
