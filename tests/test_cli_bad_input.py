"""`rnnws` on outputs it cannot write: read-only folders (a new zoo, a resumed zoo, a training run, a study, a plot),
outputs that are files where folders go, unknown image types. Each ends in one error line naming the flag and the
path, exit status 2, before any work, with nothing created and nothing changed."""
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def rnnws(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rnn_weightspace.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    "A scratch folder with a tiny config, a finished 4-run zoo and a half-built one (1 of 2 shards)."
    d = tmp_path_factory.mktemp("cli")
    cfg = {"n_runs": 4, "steps": 20, "checkpoints": [0, 20], "lr_steps": [0, 20], "lr_values": [0.01, 0.003],
           "eval_samples": 10, "n_rollouts": 2, "runs_per_shard": 2, "preset": "test"}
    (d / "cfg.json").write_text(json.dumps(cfg))
    from dataclasses import replace
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    zcfg = replace(FormalLanguageZooConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    build_zoo(zcfg, d / "zoo", workers=1, progress=False)
    build_zoo(zcfg, d / "half", workers=1, progress=False, max_shards=1)
    (d / "notes.txt").write_text("a file")
    (d / "list.json").write_text("[1, 2]")
    (d / "old.png").write_bytes(b"an earlier figure")
    (d / "ro").mkdir()
    return d


BUILD = ["zoo", "build", "formal-languages", "--config", "cfg.json", "--workers", "1", "--no-progress"]
CASES = {  # id: (arguments, the folder made read-only or None, start of the error after "rnnws: error: ")
    "build into read-only folder": (BUILD + ["--out", "ro/zoo"], "ro", "--out ro/zoo: cannot write in ro"),
    "resume read-only zoo": (BUILD + ["--out", "half", "--resume"], "half", "--out half: cannot write in half"),
    "train into read-only folder": (["train", "--zoo", "zoo", "--encoder", "flat", "--out", "ro/run"], "ro", "--out ro/run: cannot write in ro"),
    "reproduce into read-only folder": (["reproduce", "--out", "ro/study"], "ro", "--out ro/study: cannot write in ro"),
    "merge into read-only folder": (["zoo", "merge", "zoo", "half", "--out", "ro/merged"], "ro", "--out ro/merged: cannot write in ro"),
    "plot into read-only folder": (["zoo", "info", "zoo", "--plot", "ro/acc.png"], "ro", "--plot ro/acc.png: cannot write in ro"),
    "embed into read-only folder": (["embed", "--run", "nowhere", "--out", "ro/e.safetensors"], "ro", "--out ro/e.safetensors: cannot write in ro"),
    "plot over an existing file": (["zoo", "info", "zoo", "--plot", "old.png"], None, "--plot old.png exists; add --overwrite to replace it"),
    "plot of unknown type": (["zoo", "info", "zoo", "--plot", "acc.xyz"], None, "--plot acc.xyz: unknown image type '.xyz'"),
    "plot into a folder": (["zoo", "info", "zoo", "--plot", "ro"], None, "--plot ro: unknown image type"),
    "train --out is a file": (["train", "--zoo", "zoo", "--encoder", "flat", "--out", "notes.txt"], None, "--out notes.txt: exists and is not a folder"),
    "reproduce --out is a file": (["reproduce", "--out", "notes.txt"], None, "--out notes.txt: exists and is not a folder"),
    "build --out under a file": (BUILD + ["--out", "notes.txt/zoo"], None, "--out notes.txt/zoo: notes.txt is a file, not a folder"),
    "train --config not an object": (["train", "--zoo", "zoo", "--encoder", "flat", "--out", "run", "--config", "list.json"], None,
                                     "list.json: not a train config"),
    "import --out is a file": (["zoo", "import-official", "zoo", "--out", "notes.txt"], None, "--out notes.txt"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unwritable_outputs(workdir, case, read_only):
    args, ro, msg = CASES[case]
    before = tree(workdir)
    with read_only(workdir / ro) if ro else contextlib.nullcontext():
        r = rnnws(*args, cwd=workdir)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnws: error: "), r.stderr[-2000:]
    assert msg in lines[0], lines[0]
    assert tree(workdir) == before, "a failed command changed the folder"


@pytest.mark.parametrize("argv,target,kept", [
    (["zoo", "build", "formal-languages", "--out", "z", "--no-progress"], "rnn_weightspace.zoo.train.build_zoo", "the finished shards are kept: continue with --resume"),
    (["train", "--zoo", "zoo", "--encoder", "flat", "--out", "r", "--no-progress"], "rnn_weightspace.training.train", "the last checkpoint is kept: continue with --resume"),
    (["reproduce", "--out", "s"], "rnn_weightspace.study.reproduce", "finished stages and runs are kept: run the same command again"),
    (["zoo", "import-official", "src", "--out", "i"], "rnn_weightspace.zoo.official.import_official", "nothing was written"),
    (["zoo", "merge", "zoo", "half", "--out", "m"], "rnn_weightspace.zoo.merge.merge_zoos", "nothing was written"),
])
@pytest.mark.parametrize("interrupt", ["ctrl-c", "sigterm"])
def test_interrupt_says_what_is_kept(workdir, monkeypatch, capsys, argv, target, kept, interrupt):
    "Ctrl-C exits 130 and SIGTERM 143, each with one line saying what the interrupted command keeps (and no --resume where none helps)."
    from rnn_weightspace.cli import main
    from rnn_weightspace.core import Terminated
    def stop(*args, **kwargs): raise KeyboardInterrupt() if interrupt == "ctrl-c" else Terminated()
    monkeypatch.setattr(target, stop)
    monkeypatch.chdir(workdir)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert (code, len(err)) == ((130, 1) if interrupt == "ctrl-c" else (143, 1)), (code, err)
    assert err[0].startswith("rnnws: interrupted; " if interrupt == "ctrl-c" else "rnnws: terminated; ") and kept in err[0], err


def test_plot_overwrite_replaces_atomically(workdir, tmp_path):
    "--overwrite replaces an existing figure (written whole, then renamed into place)."
    target = tmp_path / "fig.png"
    target.write_bytes(b"an earlier figure")
    r = rnnws("zoo", "info", str(workdir / "zoo"), "--plot", str(target), "--overwrite", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*"))
