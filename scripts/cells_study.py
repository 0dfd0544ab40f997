"""The tiny study of other recurrent cells: the same formal-language study for LSTM, GRU and Elman (tanh) zoos, and
what transfers across cells.

    python scripts/cells_study.py SCRATCH [--seeds 3] [--copy-to results/cells]

For each cell, `reproduce(SCRATCH/<cell>, preset="tiny", zoo_kinds=("formal-languages",), zoo_overrides={"cell": cell}, ...)`
with five of the paper's encoders and the weight-blind emulator, 3 encoder seeds, no supervised baselines (their cost
is the parameter transformer's). Then the transfer: the non-interactive probing encoders trained by emulation on the
LSTM zoo embed the GRU and the Elman zoos, and the same downstream harness scores them (`SCRATCH/transfer.csv`); and
the three zoos merged into one that mixes the cells, where those encoders' embeddings predict each checkpoint's cell
(`SCRATCH/mixed_cell.csv`).
With `--copy-to`, the reports, result tables and figures (not the zoos and runs) are copied there. Resumable: run the
same command again after an interruption.
"""
import argparse
import shutil
from pathlib import Path

ENCODERS = ("layerwise-stats", "flat", "dws", "probe-static", "probe-interactive", "weight-blind")
CELLS = ("lstm", "gru", "rnn")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--copy-to", type=Path, default=None)
    a = ap.parse_args()
    import numpy as np
    import pandas as pd
    from rnn_weightspace.evaluation import evaluate_embeddings, summarize
    from rnn_weightspace.runs import Run
    from rnn_weightspace.study import STUDY_PRESETS, _run_dir, reproduce
    from rnn_weightspace.zoo.reader import Zoo
    for cell in CELLS:
        print(f"== {cell}", flush=True)
        reproduce(a.out / cell, preset="tiny", device="cpu", zoo_kinds=("formal-languages",), zoo_overrides={"cell": cell},
                  encoders=ENCODERS, seeds=a.seeds, supervised_steps=0, workers=a.workers)
    cfg, rows = STUDY_PRESETS["tiny"], []
    for cell in CELLS[1:]:
        zoo = Zoo(a.out / cell / "zoos" / "formal-languages")
        for s in range(a.seeds):
            run = Run(_run_dir(a.out / "lstm", "formal-languages", "probe-static", s))
            Z = run.embed(zoo)
            res = evaluate_embeddings(zoo, Z, seeds=[s * 100 + p for p in range(cfg.predictor_seeds)], epochs=cfg.predictor_epochs,
                                      predictors=cfg.predictors, encoder_seed=s)
            rows.append(res.assign(encoder="probe-static trained on the LSTM zoo", cell=cell))
    transfer = pd.concat(rows)
    transfer.to_csv(a.out / "transfer.csv", index=False)
    summarize(transfer, by=("cell", "encoder", "stratum", "target", "predictor", "split", "metric")).to_csv(a.out / "transfer_summary.csv", index=False)
    # a zoo that mixes the three cells: which cell is a checkpoint? (the LSTM-trained probing encoders embed all of it)
    from rnn_weightspace.zoo.merge import merge_zoos
    mixed_dir = a.out / "mixed"
    mixed = Zoo(mixed_dir) if mixed_dir.exists() else merge_zoos([a.out / c / "zoos" / "formal-languages" for c in CELLS], mixed_dir, progress=False)
    rows = []
    for s in range(a.seeds):
        Z = Run(_run_dir(a.out / "lstm", "formal-languages", "probe-static", s)).embed(mixed)
        rows.append(evaluate_embeddings(mixed, Z, seeds=[s * 100 + p for p in range(cfg.predictor_seeds)], epochs=cfg.predictor_epochs,
                                        predictors=cfg.predictors, targets=["cell"], encoder_seed=s).assign(encoder="probe-static trained on the LSTM zoo"))
    rows.append(evaluate_embeddings(mixed, np.zeros((len(mixed), 1), np.float32), seeds=[0], epochs=cfg.predictor_epochs, predictors=cfg.predictors,
                                    targets=["cell"]).assign(encoder="chance (zeros)"))
    cell_pred = pd.concat(rows)
    cell_pred.to_csv(a.out / "mixed_cell.csv", index=False)
    summarize(cell_pred).to_csv(a.out / "mixed_cell_summary.csv", index=False)
    if a.copy_to is not None:
        for cell in CELLS:
            dst = a.copy_to / cell
            shutil.rmtree(dst, ignore_errors=True); dst.mkdir(parents=True)
            for name in ("report.md", "study.json", "results", "figures", "stages"):
                src = a.out / cell / name
                if src.is_dir(): shutil.copytree(src, dst / name)
                elif src.exists(): shutil.copy(src, dst / name)
        for name in ("transfer.csv", "transfer_summary.csv", "mixed_cell.csv", "mixed_cell_summary.csv"): shutil.copy(a.out / name, a.copy_to / name)
    print("done", flush=True)


if __name__ == "__main__":
    main()
