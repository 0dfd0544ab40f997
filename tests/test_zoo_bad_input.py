"""Damaged and malicious zoo folders: every problem is one `ZooFormatError` line naming the file and the field, nothing
hangs or allocates from a forged size, and corrupt data is never used: flipped bytes, NaN weights, wrong dtypes, forged
manifests, safetensors headers and metadata tables, FIFOs and links; `merge_zoos` checks its sources and arguments first."""
import contextlib
import hashlib
import json
import os
import shutil
import signal
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from rnn_weightspace.cli import main
from rnn_weightspace.core import RNNWSError
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights
from rnn_weightspace.zoo import format as zf
from rnn_weightspace.zoo.dataset import ZooDataset
from rnn_weightspace.zoo.format import MANIFEST_NAME, ZooFormatError, ZooWriter, open_shard_file, read_manifest
from rnn_weightspace.zoo.merge import merge_zoos
from rnn_weightspace.zoo.reader import Zoo, check_finite
from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo

W0, W1 = "shards/00000.weights.safetensors", "shards/00001.weights.safetensors"
R0, R1 = "shards/00000.rollouts.safetensors", "shards/00001.rollouts.safetensors"
M0 = "shards/00000.metadata.json"
FILES = {W0: "weights", W1: "weights", R0: "rollouts", R1: "rollouts", M0: "metadata"}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    "4 runs x 2 checkpoints, 2 runs per shard: rows 0-3 in shard 0, rows 4-7 in shard 1."
    cfg = replace(FormalLanguageZooConfig(), n_runs=4, steps=20, checkpoints=(0, 20), lr_steps=(0, 20), lr_values=(0.01, 0.003),
                  eval_samples=10, n_rollouts=2, runs_per_shard=2, preset="test")
    return build_zoo(cfg, tmp_path_factory.mktemp("zoo") / "z", workers=1, progress=False).root


@pytest.fixture
def z(zoo_dir, tmp_path) -> Path:
    "A fresh copy of the zoo, to damage."
    shutil.copytree(zoo_dir, tmp_path / "z")
    return tmp_path / "z"


# --- damaging a copy -------------------------------------------------------------------------------------------------
def manifest(z): return json.loads((z / MANIFEST_NAME).read_text())
def save_manifest(z, m): (z / MANIFEST_NAME).write_text(json.dumps(m))

def edit(**changes):
    "Replace top-level manifest fields."
    return lambda z: save_manifest(z, {**manifest(z), **changes})

def edit_file_entry(shard, kind, **changes):
    def fn(z):
        m = manifest(z)
        m["shards"][shard]["files"][kind].update(changes)
        save_manifest(z, m)
    return fn

def resign(z, rel):
    "Record the file's current size and SHA-256 in the manifest, as a forger would (so deeper checks are what trips)."
    m, data = manifest(z), (z / rel).read_bytes()
    entry = m["shards"][int(rel[7:12])]["files"][FILES[rel]]
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    save_manifest(z, m)

def flip(rel, pos=-3):
    "Flip one bit of a file (its size stays the same; the manifest is not touched)."
    def fn(z):
        data = bytearray((z / rel).read_bytes()); data[pos] ^= 1; (z / rel).write_bytes(bytes(data))
    return fn

def set_weights(rel, fn):
    "Rewrite a weights shard's tensors with `fn(dict of arrays)`, then re-sign it."
    def go(z):
        t = load_file(z / rel); fn(t); save_file(t, z / rel); resign(z, rel)
    return go

def nan_at(name, row, value=np.nan):
    def fn(t): t[name][row] = value
    return fn

def astype(dtype):
    def fn(t):
        for k in t: t[k] = t[k].astype(dtype)
    return fn

def raw_header(rel, fn=None, length=None, cut=0):
    "Rewrite a safetensors header (`fn` edits the parsed header) or its length field, keep the data, then re-sign."
    def go(z):
        raw = (z / rel).read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
        hb = raw[8:8 + n]
        if fn is not None: fn(header); hb = json.dumps(header).encode()
        (z / rel).write_bytes(struct.pack("<Q", len(hb) if length is None else length) + hb + data[:len(data) - cut])
        resign(z, rel)
    return go

def by_offset(header, i):
    "Name of the i-th tensor by position in the data section."
    return sorted((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")[i][1]

def shift(i, by):
    def fn(h): h[by_offset(h, i)]["data_offsets"] = [o + by for o in h[by_offset(h, i)]["data_offsets"]]
    return fn

def overlap(h):
    a, b = by_offset(h, 0), by_offset(h, 1)
    h[b]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + h[b]["data_offsets"][1] - h[b]["data_offsets"][0]]

def metadata(fn):
    "Edit shard 0's metadata table, then re-sign it."
    def go(z):
        cols = json.loads((z / M0).read_text()); fn(cols); (z / M0).write_text(json.dumps(cols)); resign(z, M0)
    return go

def fifo(rel):
    def fn(z): (z / rel).unlink(); os.mkfifo(z / rel)
    return fn

def link_outside(rel):
    "Move a file out of the zoo and leave a symbolic link to it in its place."
    def fn(z):
        target = z.parent / ("outside_" + Path(rel).name)
        (z / rel).rename(target); (z / rel).symlink_to(target)
    return fn

def deep_json(rel):
    def fn(z):
        (z / rel).write_text("[" * 100_000 + "]" * 100_000)
        if rel != MANIFEST_NAME: resign(z, rel)
    return fn

def deep_header(rel):
    def fn(z):
        hb = ("[" * 100_000 + "]" * 100_000).encode()
        (z / rel).write_bytes(struct.pack("<Q", len(hb)) + hb); resign(z, rel)
    return fn

def spec_hidden(h, layout=True):
    spec = LSTMSpec(6, h, 2, 6)
    changes = {"model_spec": spec.to_dict()} | ({"parameter_layout": [[n, list(s)] for n, s in spec.layout]} if layout else {})
    return edit(**changes)

def drop_rollout(z):
    t = load_file(z / R1); t.pop("log_probs"); save_file(t, z / R1); resign(z, R1)


@contextlib.contextmanager
def no_hang(seconds=20):
    "Fail (instead of hanging the test run) if the block takes longer than `seconds`."
    def handler(*_): raise TimeoutError(f"hung for {seconds} s")
    old = signal.signal(signal.SIGALRM, handler); signal.alarm(seconds)
    try: yield
    finally: signal.alarm(0); signal.signal(signal.SIGALRM, old)


# what is done with the damaged folder
ACTIONS = {
    "manifest": lambda z: read_manifest(z),
    "open": lambda z: Zoo(z),
    "verify": lambda z: Zoo(z, verify=True),
    "weights": lambda z: Zoo(z).weights[:],
    "rollouts": lambda z: Zoo(z).rollouts[:],
    "module": lambda z: Zoo(z).to_module(0),
    "dataset": lambda z: ZooDataset(Zoo(z), n_rollouts=2).batch([0, 5]),
}

CASES = {  # name: (damage, action, parts of the message)
    # A1: flipped bytes are caught by the first read, whatever reads
    "flipped weights byte, read": (flip(W0), "weights", [W0, "checksum mismatch"]),
    "flipped weights byte, module": (flip(W0), "module", [W0, "checksum mismatch"]),
    "flipped weights byte, dataset": (flip(W1), "dataset", [W1, "checksum mismatch"]),
    "flipped rollouts byte, read": (flip(R0), "rollouts", [R0, "checksum mismatch"]),
    "flipped rollouts byte, dataset": (flip(R0), "dataset", [R0, "checksum mismatch"]),
    "flipped rollouts byte, verify": (flip(R1), "verify", [R1, "checksum mismatch"]),
    "flipped metadata byte, open": (lambda z: (z / M0).write_bytes((z / M0).read_bytes().replace(b'"run"', b'"rum"')), "open", [M0, "checksum mismatch"]),
    # A3: NaN/Inf and dtypes
    "NaN weights, verify": (set_weights(W1, nan_at("lstm.weight_hh_l1", 1)), "verify", [W1, "'lstm.weight_hh_l1'", "row 1 (zoo row 5)", "NaN/Inf"]),
    "Inf weights, verify": (set_weights(W0, nan_at("linear.bias", 3, np.inf)), "verify", [W0, "'linear.bias'", "row 3 (zoo row 3)"]),
    "NaN weights, read": (set_weights(W1, nan_at("lstm.weight_hh_l1", 1)), "weights", [W1, "row 5", "'lstm.weight_hh_l1'", "NaN/Inf"]),
    "NaN weights, dataset": (set_weights(W1, nan_at("lstm.bias_ih_l0", 1)), "dataset", [W1, "row 5", "'lstm.bias_ih_l0'"]),
    "float16 weights": (set_weights(W0, astype(np.float16)), "open", [W0, "stored as float16", "float32"]),
    "int32 weights": (set_weights(W1, astype(np.int32)), "open", [W1, "stored as int32", "float32"]),
    "float64 weights": (set_weights(W0, astype(np.float64)), "open", [W0, "stored as float64"]),
    # B: manifest fields
    "model_spec larger than the shards": (spec_hidden(64), "open", [W0, "shape", "model_spec"]),
    "model_spec without its layout": (spec_hidden(64, layout=False), "manifest", [MANIFEST_NAME, "'parameter_layout'"]),
    "huge hidden_size": (spec_hidden(10**9, layout=False), "manifest", [MANIFEST_NAME, "'model_spec'", "too large"]),
    "huge num_layers": (edit(model_spec={"input_size": 6, "hidden_size": 32, "num_layers": 10**9, "output_size": 6}), "manifest",
                        [MANIFEST_NAME, "'model_spec'", "too large"]),
    "model_spec as a list": (edit(model_spec=[6, 32, 2, 6]), "manifest", [MANIFEST_NAME, "'model_spec'"]),
    "parameter_layout an int": (edit(parameter_layout=5), "manifest", [MANIFEST_NAME, "'parameter_layout'"]),
    "parameter_layout of strings": (edit(parameter_layout=["lstm.weight_ih_l0"]), "manifest", [MANIFEST_NAME, "'parameter_layout'"]),
    "task a dict": (lambda z: save_manifest(z, {**manifest(z), "tasks": [{"a": 1}, *manifest(z)["tasks"][1:]]}), "manifest",
                    [MANIFEST_NAME, "'tasks[0]'"]),
    "task nested": (lambda z: save_manifest(z, {**manifest(z), "tasks": [[[0]], *manifest(z)["tasks"][1:]]}), "manifest", [MANIFEST_NAME, "'tasks[0]'"]),
    "tasks a dict": (edit(tasks={"a": 1}), "manifest", [MANIFEST_NAME, "'tasks'"]),
    "checkpoint step a string": (edit(checkpoint_steps=["0", 20]), "manifest", [MANIFEST_NAME, "'checkpoint_steps'"]),
    "runs_per_shard a string": (edit(runs_per_shard="2"), "manifest", [MANIFEST_NAME, "'runs_per_shard'"]),
    "runs missing tasks": (edit(runs={"task": [0]}), "manifest", [MANIFEST_NAME, "'runs'"]),
    "complete a string": (edit(complete="yes"), "manifest", [MANIFEST_NAME, "'complete'"]),
    "config a list": (edit(config=[1]), "manifest", [MANIFEST_NAME, "'config'"]),
    "sha256 not a digest": (edit_file_entry(0, "weights", sha256="x"), "manifest", [MANIFEST_NAME, "shards[0].files.weights", "sha256"]),
    "shard rows forged": (lambda z: save_manifest(z, {**(m := manifest(z)), "shards": [{**m["shards"][0], "rows": [0, 400]}, m["shards"][1]]}),
                          "manifest", [MANIFEST_NAME, "shards[0].rows"]),
    "config seed a string": (lambda z: save_manifest(z, {**(m := manifest(z)), "config": {**m["config"], "seed": "0"}}), "manifest",
                             [MANIFEST_NAME, "'config.seed'"]),
    "a 5000-digit number": (lambda z: (z / MANIFEST_NAME).write_text((z / MANIFEST_NAME).read_text().replace('"n_runs": 4', '"n_runs": ' + "4" * 5000)),
                            "manifest", [MANIFEST_NAME, "invalid JSON"]),
    "deep JSON manifest": (deep_json(MANIFEST_NAME), "manifest", [MANIFEST_NAME, "nested too deeply"]),
    # B: shard paths
    "shard path empty": (edit_file_entry(0, "weights", path=""), "manifest", [MANIFEST_NAME, "shards[0].files.weights.path"]),
    "shard path the folder": (edit_file_entry(0, "weights", path="."), "manifest", [MANIFEST_NAME, "shard 0 weights path '.'"]),
    "shard path a sub-folder": (edit_file_entry(1, "rollouts", path="shards"), "open", ["shards: shard file (shards[1].files.rollouts) is not a regular file"]),
    "shard path not a string": (edit_file_entry(0, "weights", path=7), "manifest", [MANIFEST_NAME, "shards[0].files.weights.path"]),
    "shard path traversal": (edit_file_entry(0, "weights", path="../../etc/passwd"), "manifest", [MANIFEST_NAME, "leaves the zoo folder"]),
    "shard path absolute": (edit_file_entry(0, "weights", path="/etc/passwd"), "manifest", [MANIFEST_NAME, "leaves the zoo folder"]),
    "shard path with a NUL": (edit_file_entry(0, "weights", path="a\x00b"), "manifest", [MANIFEST_NAME, "shard 0 weights path"]),
    "shard a link outside": (link_outside(W0), "manifest", [MANIFEST_NAME, "shard 0 weights path", "leaves the zoo folder"]),
    "manifest a link outside": (link_outside(MANIFEST_NAME), "manifest", [MANIFEST_NAME, "outside the zoo folder"]),
    # B: FIFOs (a read would block forever)
    "metadata a FIFO": (fifo(M0), "open", [M0, "shards[0].files.metadata", "not a regular file"]),
    "manifest a FIFO": (fifo(MANIFEST_NAME), "manifest", [MANIFEST_NAME, "not a regular file"]),
    "weights a FIFO": (fifo(W1), "open", [W1, "shards[1].files.weights", "not a regular file"]),
    # B: metadata tables
    "metadata task a dict": (metadata(lambda c: c["task"].__setitem__(0, {"a": 1})), "open", [M0, "column 'task' row 0"]),
    "metadata task unknown": (metadata(lambda c: c["task"].__setitem__(1, [9, 9, 9, 9])), "open", [M0, "column 'task' row 1"]),
    "metadata step a string": (metadata(lambda c: c["step"].__setitem__(0, "0")), "open", [M0, "column 'step' row 0", "integer"]),
    "metadata run a float": (metadata(lambda c: c["run"].__setitem__(2, 1.5)), "open", [M0, "column 'run' row 2"]),
    "metadata column short": (metadata(lambda c: c["accuracy"].pop()), "open", [M0, "column 'accuracy'"]),
    "metadata deep JSON": (deep_json(M0), "open", [M0, "nested too deeply"]),
    # B: safetensors headers
    "header length absurd": (raw_header(W0, length=2**63), "open", [W0, "header length", "exceeds the file size"]),
    "header length zero": (raw_header(W0, length=0), "open", [W0, "not a valid safetensors file"]),
    "header deep JSON": (deep_header(W1), "open", [W1, "nested too deeply"]),
    "negative offset": (raw_header(W0, shift(0, -8)), "open", [W0, "bad header entry", "data_offsets [-8,"]),
    "offsets with a gap": (raw_header(R0, shift(1, 8)), "open", [R0, "data_offsets"]),
    "offsets overlap": (raw_header(W1, overlap), "open", [W1, "data_offsets", "overlap"]),
    "offsets past the end": (raw_header(W0, cut=4), "open", [W0, "truncated or corrupt", "header says"]),
    "negative shape": (raw_header(W0, lambda h: h[by_offset(h, 0)].update(shape=[-4, -1])), "open", [W0, "bad header entry", "shape [-4, -1]"]),
    "shape a string": (raw_header(W0, lambda h: h[by_offset(h, 0)].update(shape="abc")), "open", [W0, "bad header entry"]),
    "unknown dtype": (raw_header(R1, lambda h: h[by_offset(h, 0)].update(dtype="F8_E4M3")), "open", [R1, "bad header entry", "dtype 'F8_E4M3'"]),
    "dtype a list": (raw_header(W0, lambda h: h[by_offset(h, 1)].update(dtype=["F32"])), "open", [W0, "bad header entry", "dtype ['F32']"]),
    "header not a table": (raw_header(W0, lambda h: h.clear() or h.update({"x": 1})), "open", [W0, "bad header entry for tensor 'x'"]),
    "rollouts differ between shards": (drop_rollout, "open", [R1, "holds other tensors than", "00000.rollouts.safetensors"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_zoo_is_one_line_naming_file_and_field(z, case):
    damage, action, parts = CASES[case]
    damage(z)
    with no_hang(), pytest.raises(ZooFormatError) as e:
        ACTIONS[action](z)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for p in parts: assert p in msg, f"{p!r} not in {msg!r}"
    assert str(z) in msg or Path(msg.split(":")[0]).is_relative_to(z), msg     # the file, with the zoo folder


def test_first_read_checks_once_per_file_and_process(z, monkeypatch):
    "Opening reads no shard data; the first read of a shard hashes it, later reads (other views, other Zoo objects) do not."
    class Seen(dict):                             # the per-process record of hashed files, counting each hash
        def __setitem__(self, k, v): hashed.append(Path(k[0]).name); super().__setitem__(k, v)
    hashed = []
    monkeypatch.setattr(zf, "_SHA256_SEEN", Seen())
    zoo = Zoo(z)
    assert hashed == []
    zoo.weights[0]; zoo.weights[1]; Zoo(z).weights[2]; zoo.split("train").weights[:0]
    assert hashed == ["00000.weights.safetensors"]
    zoo.weights[7]
    assert hashed == ["00000.weights.safetensors", "00001.weights.safetensors"]
    flip(W1)(z)                                   # changed on disk after it was checked: a new reader checks again
    with pytest.raises(ZooFormatError, match="00001.weights.safetensors: checksum mismatch"): Zoo(z).weights[7]


def test_checksums_opt_out_reads_unchecked(z):
    "checksums=False (huge zoos on slow disks) skips the hash but keeps every structural check."
    flip(W0)(z)
    w = Zoo(z, checksums=False).weights[:]
    assert w.batch_shape == (8,)
    with pytest.raises(ZooFormatError, match="checksum mismatch"): Zoo(z, checksums=False, verify=True)


def test_clean_zoo_still_reads_and_verifies(z):
    zoo = Zoo(z, verify=True)
    assert zoo.weights[:].batch_shape == (8,) and zoo.rollouts[:]["tokens"].shape[0] == 8
    assert ZooDataset(zoo, n_rollouts=2).batch([0, 7])["tokens"].shape[:2] == (2, 2)


def test_check_finite():
    w = LSTMWeights.init(LSTMSpec(3, 4, 1, 2), (5,))
    check_finite(w)
    w.weight_hh[0][3, 1, 2] = float("nan")
    with pytest.raises(ZooFormatError, match=r"^zoo: row 13 holds NaN/Inf weights \(tensor 'lstm.weight_hh_l0'\)"):
        check_finite(w, rows=[10, 11, 12, 13, 14], where="zoo")
    w.bias_out[1, 0] = float("-inf")
    with pytest.raises(ZooFormatError, match="row 1 holds NaN/Inf weights \\(tensor 'linear.bias'\\)"): check_finite(w)


def test_open_shard_file_checks(tmp_path):
    f = tmp_path / "s.safetensors"
    entry = zf.write_shard_file(f, {"a": __import__("torch").arange(6.).reshape(2, 3)})
    assert open_shard_file(f, entry["sha256"])["a"].shape == (2, 3)
    with pytest.raises(ZooFormatError, match="s.safetensors: checksum mismatch"): open_shard_file(f, "0" * 64)
    (tmp_path / "short").write_bytes(b"\x01\x02")
    with pytest.raises(ZooFormatError, match="shorter than the 8-byte header length"): open_shard_file(tmp_path / "short")
    with pytest.raises(ZooFormatError, match="shard file is missing"): open_shard_file(tmp_path / "nope")
    with pytest.raises(ZooFormatError, match="not a regular file"): open_shard_file(tmp_path)


def test_writer_refuses_non_float32_weights(tmp_path):
    from rnn_weightspace.zoo.format import toy_manifest
    spec = LSTMSpec(3, 4, 1, 2)
    wr = ZooWriter(tmp_path / "t", toy_manifest(spec, 1, [0], 1, [[0, 0]], [0]))
    try:
        md = {"run": [0], "checkpoint": [0], "step": [0], "task": [[0, 0]]}
        with pytest.raises(RNNWSError, match="weights must be float32"): wr.write_shard(0, LSTMWeights.init(spec, (1,)).to(dtype=__import__("torch").float16), {}, md)
    finally: wr.close()


def test_from_modules_refuses_unhashable_tasks(tmp_path):
    from rnn_weightspace.lstm import LSTMModel
    with pytest.raises(RNNWSError, match="metadata 'task' of model 1"):
        Zoo.from_modules(tmp_path / "m", [LSTMModel(LSTMSpec(3, 4, 1, 2))] * 2, metadata={"task": [1, {"a": 1}]})
    assert not (tmp_path / "m").exists()


# --- merge_zoos ------------------------------------------------------------------------------------------------------
def second_source(z):
    "Another build of the zoo (a different seed in its config) to merge with `z`."
    other = z.parent / "z2"
    shutil.copytree(z, other)
    save_manifest(other, {**manifest(other), "config": {**manifest(other)["config"], "seed": 99}})
    return other

def leftovers(folder): return sorted(p.name for p in folder.iterdir() if p.name.endswith(".merging"))


def test_merge_refuses_a_corrupt_source_before_writing(z):
    other = second_source(z)
    flip(W1)(other)
    with pytest.raises(ZooFormatError, match="z2/shards/00001.weights.safetensors: checksum mismatch"):
        merge_zoos([z, other], z.parent / "m", progress=False)
    assert not (z.parent / "m").exists() and not leftovers(z.parent)


def test_merge_refuses_nan_source(z):
    other = second_source(z)
    set_weights(W0, nan_at("linear.weight", 2))(other)
    with pytest.raises(ZooFormatError, match="row 2 \\(zoo row 2\\) holds NaN/Inf"):
        merge_zoos([z, other], z.parent / "m", progress=False)
    assert not (z.parent / "m").exists()


@pytest.mark.parametrize("kwargs,msg", [
    ({"runs_per_shard": -1}, "runs_per_shard (--runs-per-shard) must be a positive integer, got -1"),
    ({"runs_per_shard": 0}, "runs_per_shard (--runs-per-shard) must be a positive integer, got 0"),
    ({"runs_per_shard": True}, "runs_per_shard (--runs-per-shard)"),
    ({"runs_per_shard": 2.5}, "runs_per_shard (--runs-per-shard)"),
    ({"splits_from": -1}, "splits_from (--splits-from)"),
    ({"splits_from": 2}, "splits_from must be a source index 0..1, got 2"),
    ({"name": ""}, "name must be a non-empty string"),
])
def test_merge_arguments_are_checked_before_anything_is_created(z, kwargs, msg):
    other = second_source(z)
    with pytest.raises(RNNWSError) as e: merge_zoos([z, other], z.parent / "m", progress=False, **kwargs)
    assert msg in str(e.value) and "\n" not in str(e.value)
    assert not (z.parent / "m").exists() and not leftovers(z.parent)


def test_merge_sources_and_out_checked(z):
    with pytest.raises(RNNWSError, match="sources must be a list"): merge_zoos(str(z), z.parent / "m", progress=False)
    with pytest.raises(RNNWSError, match="at least two"): merge_zoos([z], z.parent / "m", progress=False)
    other = second_source(z)
    (z.parent / "full").mkdir(); (z.parent / "full" / "keep.txt").write_text("keep")
    with pytest.raises(RNNWSError, match=r"full: already exists \(a folder that is not empty\)"): merge_zoos([z, other], z.parent / "full", progress=False)
    assert (z.parent / "full" / "keep.txt").read_text() == "keep"
    (z.parent / "empty").mkdir()                                    # an empty folder is fine
    assert len(merge_zoos([z, other], z.parent / "empty", runs_per_shard=3, progress=False)) == 16


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_merge_failing_midway_leaves_nothing_that_blocks_a_rerun(z, monkeypatch, exc):
    other = second_source(z)
    calls = []
    orig = ZooWriter.write_shard
    def failing(self, *a, **k):
        calls.append(1)
        if len(calls) == 2: raise exc
        return orig(self, *a, **k)
    monkeypatch.setattr(ZooWriter, "write_shard", failing)
    with pytest.raises(type(exc)): merge_zoos([z, other], z.parent / "m", runs_per_shard=1, progress=False)
    assert not (z.parent / "m").exists() and not leftovers(z.parent)
    monkeypatch.undo()
    merged = merge_zoos([z, other], z.parent / "m", runs_per_shard=1, progress=False)
    Zoo(merged.root, verify=True)
    assert len(merged) == 16 and not leftovers(z.parent)


# --- the command line ------------------------------------------------------------------------------------------------
def test_cli_one_line_errors(z, capsys):
    other = second_source(z)
    flip(R0)(other)
    assert main(["zoo", "merge", str(z), str(other), "--out", str(z.parent / "m"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnws: error: ") and "\n" not in err and "z2/shards/00000.rollouts.safetensors: checksum mismatch" in err
    assert not (z.parent / "m").exists()
    assert main(["zoo", "info", str(other)]) == 2                 # info checks everything by default...
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["zoo", "info", str(other), "--no-verify"]) == 0   # ...--no-verify reads only what the summary needs
    capsys.readouterr()
    set_weights(W1, nan_at("lstm.weight_ih_l0", 0))(z)
    assert main(["zoo", "info", str(z)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "00001.weights.safetensors: tensor 'lstm.weight_ih_l0' row 0 (zoo row 4) holds NaN/Inf" in err
    fifo(M0)(z)
    with no_hang():
        assert main(["zoo", "info", str(z)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "00000.metadata.json: metadata table (shards[0].files.metadata) is not a regular file" in err
    with pytest.raises(SystemExit) as e: main(["zoo", "merge", str(z), str(other), "--out", str(z.parent / "m"), "--runs-per-shard", "-1"])
    assert e.value.code == 2 and "--runs-per-shard" in capsys.readouterr().err
    assert not (z.parent / "m").exists()
