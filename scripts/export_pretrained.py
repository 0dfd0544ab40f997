"""Export the encoders that ship with the package (`rnn_weightspace/data/pretrained/`) from a small study.

    python scripts/export_pretrained.py STUDY      # STUDY: the folder of `rnnws reproduce --preset small --out STUDY`

Seed 0 of each of the paper's six encoders, for each zoo kind of the study, best checkpoint (lowest validation loss);
existing folders are left alone (delete one to export it again)."""
import argparse
from pathlib import Path

from rnn_weightspace.pretrained import export_encoder
from rnn_weightspace.encoders.base import PAPER_ENCODERS
from rnn_weightspace.zoo.reader import Zoo

NAMES = {"formal-languages": "formal-language", "sequential-mnist": "sequential-MNIST"}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "rnn_weightspace" / "data" / "pretrained")
    a = p.parse_args()
    for kind_dir in sorted((a.study / "runs").iterdir()):
        kind = kind_dir.name
        m = Zoo(a.study / "zoos" / kind, allow_incomplete=True).manifest
        for e in PAPER_ENCODERS:
            out = a.out / m.name / e
            if out.exists(): continue
            export_encoder(kind_dir / f"{e}-seed0", out, description=(
                f"The paper's `{e}` encoder trained by emulation on the library's `small` {NAMES.get(kind, kind)} zoo (`{m.name}`: "
                f"{m.n_runs} LSTMs x {len(m.checkpoint_steps)} checkpoints of the `small` zoo preset) by the small study "
                "(`rnnws reproduce --preset small`), seed 0 of 3. Shipped with rnn_weightspace as a starting point; the study's "
                "report compares the encoders over all three seeds."))
            print(out)

if __name__ == "__main__": main()
