"""Scale-out with real processes: `torchrun` (as `python -m torch.distributed.run`) with gloo on the CPU.

- a zoo built by 2 processes equals the single-process zoo byte for byte (both backends);
- a rank killed mid-build loses nothing that was finished, and `--resume` with another world size completes the zoo
  byte for byte;
- a 2-process DistributedDataParallel training run matches the single-process losses (with augmentation), and
  resumes in a single process;
- `rnnws zoo merge` combines zoos built separately; `--distributed` without torchrun is a clear error."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_weightspace.cli import main
from rnn_weightspace.runs import Run
from rnn_weightspace.training import TrainConfig, train, train_preset
from rnn_weightspace.zoo.reader import Zoo

CFG = {"n_runs": 8, "steps": 150, "checkpoints": [0, 75, 150], "lr_steps": [0, 150], "lr_values": [0.01, 0.003],
       "eval_samples": 100, "n_rollouts": 4, "runs_per_shard": 1, "seed": 3, "preset": "dist-test"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args, nproc=2, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "rnn_weightspace.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, **kw)


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def single_process_build(d: Path, backend: str) -> Path:
    "The single-process build of CFG (in `d`, whose cfg.json holds it) with `backend`."
    extra = ["--batch-runs", "2"] if backend == "batched" else []
    assert main(["zoo", "build", "formal-languages", "--config", str(d / "cfg.json"), "--out", str(d / backend), "--workers", "1",
                 "--backend", backend, "--device", "cpu", "--no-progress", *extra]) == 0
    return d / backend


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "The single-process build of CFG with the CPU backend (the batched one is built by the test that needs it)."
    d = tmp_path_factory.mktemp("dist_ref")
    (d / "cfg.json").write_text(json.dumps(CFG))
    single_process_build(d, "cpu")
    return d


# the batched backend's single-process equality is checked in test_zoo_build; under torchrun it runs with -m slow
@pytest.mark.parametrize("backend", ["cpu", pytest.param("batched", marks=pytest.mark.slow)])
def test_two_process_zoo_equals_single_process(reference, tmp_path, backend):
    if not (reference / backend).exists(): single_process_build(reference, backend)
    extra = ["--backend", backend, "--device", "cpu"] + (["--batch-runs", "2"] if backend == "batched" else [])
    r = torchrun("zoo", "build", "formal-languages", "--config", reference / "cfg.json", "--out", tmp_path / "zoo", "--no-progress", "--distributed", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("Zoo") == 1                                        # only rank 0 reports
    assert tree(tmp_path / "zoo") == tree(reference / backend)


def _descendants(pid: int) -> list[int]:
    "Every process below `pid` (read from /proc)."
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try: ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError): continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []): out.append(c); todo.append(c)
    return out


def _rank_of(pid: int) -> int | None:
    try: env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError: return None
    return next((int(e[5:]) for e in env if e.startswith(b"RANK=")), None)


@pytest.mark.skipif(not Path("/proc").exists(), reason="finds the rank processes through /proc")
def test_killed_rank_is_recovered_by_resume(reference, tmp_path):
    out = tmp_path / "zoo"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "rnn_weightspace.cli", "zoo", "build",
           "formal-languages", "--config", str(reference / "cfg.json"), "--out", str(out), "--no-progress", "--distributed"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(list(out.glob("shards/*.pending.json"))) < 3: time.sleep(0.02)
        victim = next(pid for pid in _descendants(p.pid) if _rank_of(pid) == 1)
        os.kill(victim, signal.SIGKILL)                                      # rank 1 dies mid-build; torchrun stops rank 0
        p.wait(timeout=120)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode != 0
    m = json.loads((out / "manifest.json").read_text())
    assert not m["complete"], "the build finished before a rank could be killed; make CFG larger"
    finished = {f.name.split(".")[0]: (out / "shards" / f"{f.name.split('.')[0]}.weights.safetensors").stat().st_mtime_ns
                for f in out.glob("shards/*.pending.json")}
    assert len(finished) >= 3
    # resume with another world size (one process): the finished shards are kept, the rest is built
    assert main(["zoo", "build", "formal-languages", "--config", str(reference / "cfg.json"), "--out", str(out), "--workers", "1",
                 "--resume", "--no-progress"]) == 0
    assert tree(out) == tree(reference / "cpu")
    for stem, mtime in finished.items():
        assert (out / "shards" / f"{stem}.weights.safetensors").stat().st_mtime_ns == mtime, f"shard {stem} was rebuilt"


@pytest.fixture(scope="module")
def train_zoo(reference):
    return Zoo(reference / "cpu")


def test_two_process_training_matches_single_process(train_zoo, tmp_path):
    cfg = train_preset("tiny", encoder="flat", steps=12, eval_every=6, log_every=3, batch_size=8)   # flat: random permutations
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    single = train(train_zoo, cfg, tmp_path / "single", device="cpu", progress=False, figures=False)
    r = torchrun("train", "--zoo", train_zoo.root, "--encoder", "flat", "--config", tmp_path / "cfg.json", "--out", tmp_path / "ddp",
                 "--no-progress", "--no-figures", "--distributed", "--max-steps", 6)
    assert r.returncode == 0, r.stderr[-3000:]
    assert Run(tmp_path / "ddp").step == 6
    # the rest of the run in one process (resume with another world size)
    assert main(["train", "--zoo", str(train_zoo.root), "--encoder", "flat", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "ddp"),
                 "--no-progress", "--no-figures", "--resume", "--device", "cpu"]) == 0
    a, b = single.metrics, Run(tmp_path / "ddp").metrics
    assert a[["step", "split"]].values.tolist() == b[["step", "split"]].values.tolist()
    np.testing.assert_allclose(a.loss.to_numpy(), b.loss.to_numpy(), rtol=1e-5)   # equal within rounding (not bit for bit)


def test_distributed_flags_need_torchrun(train_zoo, tmp_path, capsys):
    assert main(["zoo", "build", "formal-languages", "--preset", "tiny", "--out", str(tmp_path / "z"), "--distributed", "--no-progress"]) == 2
    assert "torchrun --nproc-per-node" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    assert main(["train", "--zoo", str(train_zoo.root), "--encoder", "flat", "--out", str(tmp_path / "t"), "--distributed", "--no-progress"]) == 2
    assert "torchrun --nproc-per-node" in capsys.readouterr().err


def test_odd_batch_is_refused_under_two_processes(train_zoo, tmp_path):
    r = torchrun("train", "--zoo", train_zoo.root, "--encoder", "flat", "--batch-size", 5, "--steps", 2, "--out", tmp_path / "odd", "--no-progress")
    assert r.returncode != 0 and "must be divisible by the number of processes (2)" in r.stderr


def test_merge_cli(reference, tmp_path, capsys):
    other = {**CFG, "seed": 4, "n_runs": 3}
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["zoo", "build", "formal-languages", "--config", str(tmp_path / "other.json"), "--out", str(tmp_path / "b"), "--workers", "1", "--no-progress"]) == 0
    a, b = Zoo(reference / "cpu"), Zoo(tmp_path / "b")
    code = main(["zoo", "merge", str(reference / "cpu"), str(tmp_path / "b"), "--out", str(tmp_path / "m"), "--no-progress"])
    err = capsys.readouterr().err
    if code == 2:                                                            # the two seeds drew different val tasks
        assert "--splits-from" in err
        assert main(["zoo", "merge", str(reference / "cpu"), str(tmp_path / "b"), "--out", str(tmp_path / "m"), "--splits-from", "0", "--no-progress"]) == 0
    m = Zoo(tmp_path / "m", verify=True)
    assert len(m) == len(a) + len(b) and m.metadata.run.nunique() == CFG["n_runs"] + 3
    np.testing.assert_array_equal(m.weights[len(a):].flatten().numpy(), b.weights[:].flatten().numpy())
    assert main(["zoo", "merge", str(reference / "cpu"), str(reference / "cpu"), "--out", str(tmp_path / "m2"), "--no-progress"]) == 2
    assert "same build" in capsys.readouterr().err
