"""Every numbered notebook opens on Colab as a reader expects: the badge in the first cell (pointing at the notebook
itself), a hidden install cell that nbdev never evaluates, and the GPU-runtime metadata, which `nbdev-clean` keeps."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1] / "nbs"
# every numbered notebook but the Benchmarks and Results pages (7x), which read result files of the repository
NOTEBOOKS = sorted(p for p in NBS.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("7"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badge_install_cell_and_gpu_runtime(nb):
    d = json.loads(nb.read_text())
    first = "".join(d["cells"][0]["source"])
    assert d["cells"][0]["cell_type"] == "markdown" and first.startswith("# ")
    assert f"colab.research.google.com/github/rnn-weightspace/rnn_weightspace/blob/main/nbs/{nb.name})" in first
    install = "".join(d["cells"][1]["source"])
    assert d["cells"][1]["cell_type"] == "code" and "#| hide" in install and "#| eval: false" in install and "%pip install" in install
    assert d["metadata"].get("accelerator") == "GPU" and "colab" in d["metadata"]


# the notebooks a user runs to do something (zoos, encoders, reproduction, tutorials): one `PRESET` scales them and
# `get_device()` picks the GPU when there is one (named without their numbers, which change when notebooks are added)
USER_FACING = sorted(p for p in NOTEBOOKS if p.stem.split("_", 1)[1] in {
    "zoo.train", "zoo.sequential_mnist", "encoders.base", "encoders.stats", "encoders.flat", "encoders.transformer", "encoders.dws",
    "encoders.probing", "study", "fidelity", "theory", "pretrained", "tutorial_five_minutes", "tutorial_your_own_rnns",
    "tutorial_paper_scale"})


@pytest.mark.parametrize("nb", USER_FACING, ids=lambda p: p.stem)
def test_one_preset_and_get_device(nb):
    code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    settings = [c for c in code if any(l.startswith("PRESET = ") for l in c.splitlines())]
    assert len(settings) == 1 and "#| hide" not in settings[0]                        # one visible place to change
    assert "get_device()" in settings[0]
    uses = [c for c in code if "PRESET" in c and c is not settings[0]]
    assert uses, "PRESET is set but nothing uses it"


def test_nbdev_clean_keeps_the_colab_metadata(tmp_path):
    src = NOTEBOOKS[0]
    work = tmp_path / "nbs"; work.mkdir()
    shutil.copy(src, work / src.name)
    d = json.loads((work / src.name).read_text())
    d["metadata"]["language_info"] = {"name": "python"}                     # something nbdev-clean removes
    (work / src.name).write_text(json.dumps(d))
    clean = "import sys; from nbdev.clean import nbdev_clean; nbdev_clean(fname=sys.argv[1])"   # nbdev-clean, without PATH
    subprocess.run([sys.executable, "-c", clean, str(work / src.name)], check=True, cwd=NBS.parent)
    md = json.loads((work / src.name).read_text())["metadata"]
    assert md.get("accelerator") == "GPU" and "colab" in md and "language_info" not in md


@pytest.mark.parametrize("nb", USER_FACING, ids=lambda p: p.stem)
def test_run_all_keeps_what_the_reader_built(nb):
    "A notebook writes into `workdir(...)` and deletes it only under test; long or GPU-only work is guarded by its settings."
    code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    for c in code:
        if c.startswith("#| export"): continue                        # the library's own code (e.g. overwrite=True)
        for line in c.splitlines():
            if "rmtree(" in line and not line.lstrip().startswith("#"):
                assert "if in_test()" in line, f"{nb.name}: deletes outside the test suite: {line.strip()}"
            assert 'device="cuda"' not in line, f"{nb.name}: a cell asks for CUDA whatever the runtime: {line.strip()}"
    assert [c for c in code[1:] if "#| eval: false" in c] == [], "only the install cell is left out of Run all"
    if any("os.chdir(" in c for c in code): assert any("workdir(" in c for c in code)
