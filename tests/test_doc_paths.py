"""The docs cite only files that are in the repository: every path under a top-level folder of the repository named in
a notebook (the documentation's source), the README or a benchmark or script docstring exists, relative to the repository
or to the citing file's folder. A path with a `<placeholder>` names what a command writes (`results/<kind>_summary.csv`)
and is not a citation; a path ending in `_` is a prefix."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("benchmarks", "scripts", "results", "tests", "nbs", "rnn_weightspace", ".github", ".ci")
PATH = re.compile(r"(?<![\w./<-])((?:%s)/[\w./{},*<>-]*[\w*}>])" % "|".join(re.escape(f) for f in FOLDERS))


def _texts():
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        yield nb, "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
    for f in [ROOT / "README.md", *sorted((ROOT / "benchmarks").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.py")),
              *sorted((ROOT / "scripts").glob("*.py"))]:
        yield f, f.read_text()


def _exists(path: str, base: Path) -> bool:
    if "{" in path:                                                   # results/encoders_cpu_1t.{txt,json}
        head, rest = path.split("{", 1); options, tail = rest.split("}", 1)
        return all(_exists(head + o + tail, base) for o in options.split(","))
    pattern = path + ("*" if path.endswith("_") else "")
    return any(any(where.glob(pattern)) if "*" in pattern else (where / pattern).exists() for where in (ROOT, base))


def test_cited_paths_exist():
    missing = sorted({(str(f.relative_to(ROOT)), p) for f, text in _texts() for p in PATH.findall(text)
                      if "<" not in p and not _exists(p.rstrip(".,:;"), f.parent)})
    assert not missing, f"the docs cite paths that are not in the repository: {missing}"


def test_the_check_sees_a_missing_path(tmp_path):
    assert PATH.findall("see `results/nothing_here.csv` and benchmarks/results/gpu_suite_<gpu>.json") == \
        ["results/nothing_here.csv", "benchmarks/results/gpu_suite_<gpu>.json"]
    assert not _exists("results/nothing_here.csv", tmp_path) and _exists("benchmarks/results/encoders_", tmp_path)
    assert _exists("results/encoders_cpu_1t.{txt,json}", ROOT / "benchmarks") and not _exists("results/encoders_cpu_1t.{txt,pdf}", ROOT / "benchmarks")
