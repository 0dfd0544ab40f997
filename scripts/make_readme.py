"""Render `nbs/index.ipynb` to `README.md` without Quarto (which `nbdev-readme` needs and our machines lack).

Markdown cells are copied, code cells become fenced Python blocks (nbdev directives and `#| hide` cells dropped).
`tests/test_readme.py` checks that the committed README is this script's output. Usage: `python scripts/make_readme.py`.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]).strip("\n")
        lines = src.splitlines()
        directives = [l for l in lines if l.startswith("#|")]
        if any("hide" in d for d in directives): continue
        body = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
        if not body: continue
        if cell["cell_type"] == "markdown":
            # nbdev's title cell: "# Title" then "> summary"; links to notebooks and images are relative to nbs/
            parts.append(re.sub(r"\]\((?!https?://|#)([^)]+\.(?:ipynb|png|svg))\)", r"](nbs/\1)", body))
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{body}\n```")
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text = "<!-- generated from nbs/index.ipynb by scripts/make_readme.py; edit the notebook, not this file -->\n\n" + render(ROOT / "nbs" / "index.ipynb")
    out = ROOT / "README.md"
    if "--check" in sys.argv:
        sys.exit(0 if out.exists() and out.read_text() == text else 1)
    out.write_text(text)
