"""The paper-scale study, checked end to end on the CPU with the paper's hyper-parameters and every step count scaled
down by one flag (`--step-scale`), on 24-run zoos of both kinds and three encoders; and the one-command GPU script.
The paper's sequential-MNIST zoo reads the 60,000 MNIST training digits from LeCun's IDX files: offline, a folder of
such files written from the shipped digits stands in for them (`RNNWS_MNIST_DIR`)."""
import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnn_weightspace.cli import main
from rnn_weightspace.study import STUDY_PRESETS
from rnn_weightspace.tasks.sequential_mnist import load_mnist
from rnn_weightspace.runs import Run

ROOT = Path(__file__).resolve().parents[1]


def write_idx(path: Path, a: np.ndarray):
    "LeCun's IDX format (gzip): 0x0000, type 0x08 (ubyte), ndim; big-endian sizes; the bytes."
    data = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + np.ascontiguousarray(a, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1))


@pytest.fixture
def mnist_files(tmp_path, monkeypatch):
    "The two MNIST training files, 60,000 digits made of six copies of the shipped 10,000, found through RNNWS_MNIST_DIR."
    d, shipped = tmp_path / "mnist", load_mnist("offline")
    d.mkdir()
    write_idx(d / "train-images-idx3-ubyte.gz", np.tile(shipped.images.numpy(), (6, 1, 1)))
    write_idx(d / "train-labels-idx1-ubyte.gz", np.tile(shipped.labels.numpy(), 6))
    monkeypatch.setenv("RNNWS_MNIST_DIR", str(d))
    return d


@pytest.mark.slow   # 4 min on 2 idle cores (13 on a busy machine); the paper preset also runs in 41_study and in the GPU script's checks
def test_paper_preset_end_to_end_scaled_down(tmp_path, mnist_files):
    out = tmp_path / "check"
    args = ["reproduce", "--preset", "paper", "--step-scale", "0.0002", "--zoo-runs", "24", "--seeds", "1", "--device", "cpu",
            "--workers", "2", "--encoders", "layerwise-stats,probe-interactive,weight-blind", "--out", str(out)]
    assert main(args) == 0
    text = (out / "report.md").read_text()
    for kind in ("formal-languages", "sequential-mnist"):
        assert f"## {kind}" in text and (out / "figures" / f"{kind}_curves.png").exists()
        cfg = Run(out / "runs" / kind / "probe-interactive-seed0").config
        paper = STUDY_PRESETS["paper"]
        assert (cfg.size, cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.clip) == ("paper", 1e-4, 64, 0.01, 0.1)   # the paper's values
        assert cfg.steps == 20 and paper.train_preset == "paper"                                                   # 100k x 0.0002
        assert len(pd.read_csv(out / "results" / f"{kind}_emulation.csv")) == 3
    assert "## Time at full scale (extrapolated)" in text and "**total**" in text
    src = json.loads((out / "zoos" / "sequential-mnist" / "manifest.json").read_text())["task_family"]["source"]
    assert (src["name"], src["n_train"], src["n_eval"]) == ("mnist", 47_998, 12_002)           # the paper's digits and split
    assert main(args) == 0                                                  # finished: nothing runs again


def test_paper_script_refuses_without_a_gpu(tmp_path):
    import torch
    if torch.cuda.is_available(): pytest.skip("this machine has a GPU: the script would start the real study")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}   # this interpreter's python and rnnws first
    r = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce_paper.sh"), str(tmp_path / "x")], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "no CUDA device" in r.stderr
    assert not (tmp_path / "x").exists()
