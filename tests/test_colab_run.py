""""Run all", as Colab does it: each user-facing notebook executed top to bottom in a fresh Jupyter kernel, in an empty
working folder, at its defaults, with torch's default thread count (no `OMP_NUM_THREADS`). No nbdev flag is honoured
(`#| eval: false`, `slow` and `gpu` cells run like any other: the notebooks' own settings cells must guard what is long
or needs a GPU) and `IN_TEST` is unset, so no workload is shrunk for the test. Each notebook must finish within its
budget on this machine's CPUs.

Slow (about half an hour in all on two CPU cores): `pytest -m slow tests/test_colab_run.py`. One notebook, with the time
of each cell: `python tests/test_colab_run.py nbs/60_tutorial_five_minutes.ipynb`."""
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
# the notebooks a user runs on Colab to do something: the tutorials, the zoo and encoder notebooks, the study, the
# fidelity record and the theory demos (named without their numbers, which change when notebooks are added)
USER_FACING = ("zoo.train", "zoo.sequential_mnist", "encoders.base", "encoders.stats", "encoders.flat", "encoders.transformer",
               "encoders.dws", "encoders.probing", "pretrained", "study", "fidelity", "theory", "tutorial_five_minutes", "tutorial_your_own_rnns",
               "tutorial_paper_scale")
NOTEBOOKS = sorted(p for p in NBS.glob("[0-9][0-9]_*.ipynb") if p.stem.split("_", 1)[1] in USER_FACING)
BUDGET_S = 600                        # "Run all" finishes in minutes on a free Colab runtime (2 CPU cores, like this machine)
BUDGETS_S = {"tutorial_five_minutes": 360}


def run_like_colab(nb: Path, workdir: Path, timeout: int = BUDGET_S, save: Path | None = None) -> list[tuple[int, float, str]]:
    "Execute every cell of `nb` in a fresh kernel with `workdir` as the working folder; the (index, seconds, first line) of each code cell."
    import nbformat
    from nbclient import NotebookClient
    env_drop = ("IN_TEST", "RNNWS_TEST_FLAGS", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS")                  # Colab sets no thread count: torch uses every core
    saved = {k: os.environ.pop(k) for k in env_drop if k in os.environ}   # the kernel inherits this environment
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        book = nbformat.read(nb, as_version=4)
        client = NotebookClient(book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
                                record_timing=True)
        t0 = time.monotonic()
        client.execute()
        if time.monotonic() - t0 > timeout: raise TimeoutError(f"{nb.name}: Run all took {time.monotonic() - t0:.0f} s > {timeout} s")
        if save is not None: nbformat.write(book, save)
    finally:
        os.environ.update(saved)
    times = []
    for i, c in enumerate(book.cells):
        if c.cell_type != "code": continue
        t = c.metadata.get("execution", {})
        start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
        secs = (_ts(end) - _ts(start)) if start and end else float("nan")
        times.append((i, secs, c.source.splitlines()[0] if c.source else ""))
    return times


def _ts(s: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_like_colab(nb, tmp_path):
    budget = BUDGETS_S.get(nb.stem.split("_", 1)[1], BUDGET_S)
    t0 = time.monotonic()
    times = run_like_colab(nb, tmp_path, timeout=budget)
    total = time.monotonic() - t0
    slowest = sorted(times, key=lambda t: -t[1] if t[1] == t[1] else 0)[:3]
    print(f"{nb.name}: {total:.0f} s; slowest cells: " + "; ".join(f"#{i} {s:.0f} s ({line[:40]})" for i, s, line in slowest))
    assert total <= budget, f"{nb.name}: Run all took {total:.0f} s, over its {budget} s budget"


def test_the_list_names_existing_notebooks():
    assert len(NOTEBOOKS) == len(USER_FACING), sorted(set(USER_FACING) - {p.stem.split("_", 1)[1] for p in NOTEBOOKS})


if __name__ == "__main__":       # python tests/test_colab_run.py NB... [--save DIR]: time each cell; --save keeps the executed notebooks
    import tempfile
    args = sys.argv[1:]
    save = Path(args.pop(args.index("--save") + 1)) if "--save" in args else None
    if save is not None: args.remove("--save"); save.mkdir(parents=True, exist_ok=True)
    for arg in args:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.monotonic()
            times = run_like_colab(Path(arg).resolve(), Path(d), timeout=int(os.environ.get("BUDGET_S", 3600)),
                                   save=None if save is None else save / Path(arg).name)
            print(json.dumps({"notebook": arg, "seconds": round(time.monotonic() - t0, 1),
                              "cells": [(i, round(s, 1), line[:60]) for i, s, line in times]}), flush=True)
