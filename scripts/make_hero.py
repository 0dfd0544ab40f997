"""Draw the landing page's figure (`nbs/images/interrogation.png`) from the recorded `small` sweep of `50_theory`.

    python scripts/make_hero.py          # reads results/theory/interrogation_k4.csv

The CSV is the sweep's summary (k = 4, 16 pointer-chasing RNNs, 3 seeds of 2,500 steps per interrogator; 42
interrogators trained in 45 minutes on two CPU cores): `PRESET = "small"` in `50_theory` recomputes it."""
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
from rnn_weightspace.theory import plot_interrogation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    summary = pd.read_csv(ROOT / "results" / "theory" / "interrogation_k4.csv").set_index(["kind", "L"])
    fig = plot_interrogation(summary, k=4, n_seeds=3)
    fig.savefig(ROOT / "nbs" / "images" / "interrogation.png", dpi=180, bbox_inches="tight")
    print("wrote nbs/images/interrogation.png")
