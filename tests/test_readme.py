"""The README is rendered from `nbs/index.ipynb`; its Quickstart has exactly two commands, and `.ci/run` runs the second."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_rendered_from_index():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_readme.py"), "--check"])
    assert r.returncode == 0, "README.md is stale: run `python scripts/make_readme.py` after editing nbs/index.ipynb"


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    cmds = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
    assert len(cmds) == 2 and all("\n" not in c for c in cmds), cmds
    assert "rnnws reproduce --preset tiny" in cmds[0]
    assert "pytest" in cmds[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^pip install .*pytest' README.md" in ci
    assert [l for l in readme.splitlines() if re.match(r"^pip install .*pytest", l)][0] == cmds[1]
    assert "grep -m1 -E '^pip install .*rnnws reproduce' README.md" in ci          # CI also runs the main job verbatim
    assert [l for l in readme.splitlines() if re.match(r"^pip install .*rnnws reproduce", l)][0] == cmds[0]
