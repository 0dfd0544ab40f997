"""Run every notebook under `nbs/` as a test, with `nbdev-test` semantics (cells flagged `slow`, `gpu` or
`notest` are skipped unless `RNNWS_TEST_FLAGS` forces them, e.g. `RNNWS_TEST_FLAGS="slow" pytest`)."""
import os
from pathlib import Path

import pytest
from nbdev import test as nbt  # imported as a module so pytest does not collect `test_nb` itself
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if not any(part.startswith((".", "_")) for part in p.relative_to(ROOT / "nbs").parts))


@pytest.mark.parametrize("nb", NBS, ids=[str(p.relative_to(ROOT / "nbs")) for p in NBS])
def test_notebook(nb: Path):
    cfg = get_config(ROOT)
    force = os.environ.get("RNNWS_TEST_FLAGS", "").split()
    skip = [f for f in cfg.tst_flags.split() if f not in force]
    ok, secs = nbt.test_nb(nb, skip_flags=skip, force_flags=force, basepath=str(ROOT))
    assert ok, f"{nb.name} failed (see the traceback above)"
