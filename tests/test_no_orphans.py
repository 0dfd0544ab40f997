"""No process outlives a killed `rnnws`: a 2-worker zoo build and a 2-worker reproduction study are killed with SIGKILL
and with SIGTERM while their workers compute; every descendant must be gone within seconds, SIGTERM must exit with
status 143 like a clean interrupt, and nothing may be written into the folder after the parent's death."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")


def _stat(pid: int) -> tuple[int, str] | None:
    "(parent pid, state) of a live process, None when it is gone."
    try: rest = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError): return None
    return int(rest[1]), rest[0]


def _descendants(root: int) -> set[int]:
    "Every live (non-zombie) process below `root`."
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (s := _stat(int(d.name))) and s[1] != "Z": parents[int(d.name)] = s[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids) -> set[int]:
    return {p for p in pids if (s := _stat(p)) and s[1] != "Z"}


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _start(args: list[str], tmp_path: Path, ready: str) -> tuple[subprocess.Popen, set[int]]:
    "Start `rnnws args`, wait for `ready` on its stderr and for two busy workers; return it and its descendants."
    err = open(tmp_path / "stderr.txt", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "rnn_weightspace.cli", *args], stdout=subprocess.PIPE, stderr=err, env=env)
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        assert p.poll() is None, (tmp_path / "stderr.txt").read_text()
        kids = _descendants(p.pid)
        workers = [k for k in kids if b"multiprocessing" in Path(f"/proc/{k}/cmdline").read_bytes()] if kids else []
        if ready in (tmp_path / "stderr.txt").read_text() and len(workers) >= 2: break
    else: pytest.fail("the workers did not start:\n" + (tmp_path / "stderr.txt").read_text())
    time.sleep(2)                                                        # let them get busy
    return p, _descendants(p.pid)


def _check_gone(p: subprocess.Popen, kids: set[int], sig: int, folder: Path, tmp_path: Path) -> None:
    os.kill(p.pid, sig)
    out, _ = p.communicate(timeout=60)                                   # returns: no survivor holds our stdout open
    deadline = time.time() + 15
    while _alive(kids) and time.time() < deadline: time.sleep(0.2)
    assert not _alive(kids), f"survivors after signal {sig}: {sorted(_alive(kids))}"
    if sig == signal.SIGTERM:
        err = (tmp_path / "stderr.txt").read_text().strip().splitlines()
        assert p.returncode == 143, (p.returncode, err[-5:])
        assert err[-1].startswith("rnnws: terminated;"), err[-5:]
    else: assert p.returncode == -signal.SIGKILL
    before = _files(folder)
    time.sleep(3)
    assert _files(folder) == before, "files changed after the parent died"


def _zoo_config(tmp_path: Path) -> Path:
    cfg = {"n_runs": 8, "steps": 4000, "checkpoints": [0, 4000], "lr_steps": [0, 4000], "lr_values": [0.01, 0.003],
           "eval_samples": 20, "n_rollouts": 2, "runs_per_shard": 1, "preset": "test"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    return tmp_path / "cfg.json"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_zoo_build_workers_die_with_parent(tmp_path, sig):
    out = tmp_path / "zoo"
    p, kids = _start(["zoo", "build", "formal-languages", "--config", str(_zoo_config(tmp_path)), "--out", str(out),
                      "--workers", "2", "--no-progress"], tmp_path, ready="")
    _check_gone(p, kids, sig, out, tmp_path)
    # what was finished is kept, and the build can be continued
    r = subprocess.run([sys.executable, "-m", "rnn_weightspace.cli", "zoo", "info", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# SIGTERM on a study runs with -m slow: the default run kills it with SIGKILL (the harder case) and the zoo build with both
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)], ids=["SIGKILL", "SIGTERM"])
def test_reproduce_workers_die_with_parent(tmp_path, sig):
    out = tmp_path / "study"
    # a small zoo, then two long training jobs (the parameter transformer, two seeds): killed while both workers train
    p, kids = _start(["reproduce", "--preset", "tiny", "--zoo-kind", "formal-languages", "--workers", "2", "--zoo-runs", "4",
                      "--step-scale", "0.1", "--seeds", "2", "--encoders", "param-transformer", "--out", str(out)], tmp_path,
                     ready="stage train ...")
    assert not list((out / "stages").glob("train*.json")), "the training stage finished before the kill"
    _check_gone(p, kids, sig, out, tmp_path)
