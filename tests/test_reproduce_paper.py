"""The paper-scale study, checked end to end on the CPU with the paper's hyper-parameters and every step count scaled
down by one flag (`--step-scale`), on 24-run zoos of both kinds and three encoders; and the one-command GPU script."""
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rnn_weightspace.cli import main
from rnn_weightspace.reproduce import STUDY_PRESETS
from rnn_weightspace.training import Run

ROOT = Path(__file__).resolve().parents[1]


def test_paper_preset_end_to_end_scaled_down(tmp_path):
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
    assert main(args) == 0                                                  # finished: nothing runs again


def test_paper_script_refuses_without_a_gpu(tmp_path):
    import torch
    if torch.cuda.is_available(): pytest.skip("this machine has a GPU: the script would start the real study")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce_paper.sh"), str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode != 0 and "no CUDA device" in r.stderr
    assert not (tmp_path / "x").exists()
