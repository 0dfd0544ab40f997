"""The documentation, checked without Quarto: `tools/build_docs_html.py` (nbdev-proc-nbs + nbconvert) renders every
notebook to HTML once; these tests check that every page exists with its notebook's title, shows no cell error, has
working intra-site links and no link to a notebook, and that headless Chromium draws the landing page and a notebook
page (skipped where no Chromium is installed).

The build runs once per session, also under `pytest -n 2` (the workers share it through a file lock)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
NBS = Path(os.environ.get("RNNWS_DOCS_NBS", REPO / "nbs")).resolve()  # (override: check a modified copy of nbs/)
SCRIPT = REPO / "tools" / "build_docs_html.py"
BUILD_TIMEOUT = 900
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--hide-scrollbars"]

# ---------------------------------------------------------------------------------------------- expected pages


def page_of(nb_name: str) -> str:
    "Quarto's page for a notebook: numeric prefix dropped, `.html` (`12_zoo.format.ipynb` -> `zoo.format.html`)"
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", nb_name.lower()).rsplit(".", 1)[0] + ".html"


def sidebar_entries(contents) -> list[str]:
    out = []
    for o in contents or []:
        if isinstance(o, str): out.append(o)
        elif isinstance(o, dict) and "contents" in o: out += sidebar_entries(o["contents"])
        elif isinstance(o, dict) and o.get("href"): out.append(o["href"])
    return [Path(o).name for o in out if o.endswith(".ipynb")]


def sidebar_notebooks() -> list[str]:
    d = yaml.safe_load((NBS / "sidebar.yml").read_text())
    sb = d["website"]["sidebar"]
    return sidebar_entries((sb[0] if isinstance(sb, list) else sb).get("contents"))


def documented_notebooks() -> list[str]:
    "index.ipynb plus every notebook listed in sidebar.yml"
    return list(dict.fromkeys(["index.ipynb", *sidebar_notebooks()]))


def notebook_title(nb_name: str) -> str:
    "The notebook's title: front matter `title:` in a raw cell, else its first `# Title` markdown heading"
    nb = json.loads((NBS / nb_name).read_text(encoding="utf-8"))
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "raw" and (m := re.search(r"^title:\s*(.+?)\s*$", src, re.M)):
            return m.group(1).strip("'\"")
        if c["cell_type"] == "markdown" and (m := re.search(r"^#\s+(.+?)\s*$", src, re.M)):
            return m.group(1)
    return ""


# ------------------------------------------------------------------------------------------------ HTML parsing


class Page(HTMLParser):
    "What the checks need from a page: <title>, <h1> texts, ids, links, text of cell outputs and error markers"

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.title, self.h1, self.ids, self.hrefs, self.errors = "", [], set(), [], []
        self._stack, self._in_title, self._h1, self._out_depth, self._out_text = [], False, None, 0, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("name"): self.ids.add(a["name"])
        if tag == "a" and a.get("href") is not None: self.hrefs.append(a["href"])
        if tag == "title": self._in_title = True
        if tag == "h1": self._h1 = []
        if "output_error" in cls or "jp-OutputArea-error" in cls: self.errors.append(f"<{tag} class={a.get('class')}>")
        if tag in VOID: return
        is_out = "jp-OutputArea-output" in cls or "output_subarea" in cls
        self._stack.append(is_out)
        if is_out:
            self._out_depth += 1
            if self._out_depth == 1: self._out_text = []

    def handle_endtag(self, tag):
        if tag == "title": self._in_title = False
        if tag == "h1" and self._h1 is not None:
            self.h1.append(" ".join("".join(self._h1).split()).replace("¶", "").strip())
            self._h1 = None
        if tag in VOID or not self._stack: return
        if self._stack.pop():
            self._out_depth -= 1
            if self._out_depth == 0:
                text = "".join(self._out_text)
                if "Traceback (most recent call last)" in text or re.search(r"^\w*(Error|Exception): ", text, re.M):
                    self.errors.append(text.strip()[:300])

    def handle_data(self, data):
        if self._in_title: self.title += data
        if self._h1 is not None: self._h1.append(data)
        if self._out_depth: self._out_text.append(data)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

# ------------------------------------------------------------------------------------------------------- build


def _build(out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.time()
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--nbs", str(NBS)], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=BUILD_TIMEOUT)
    res = {"rc": r.returncode, "log": r.stdout + r.stderr, "seconds": round(time.time() - t, 1)}
    (out / "_test_build.json").write_text(json.dumps(res))
    return res


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    "Build the HTML docs once: {'out', 'rc', 'log', 'seconds', 'report'}"
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        out = tmp_path_factory.mktemp("docs_html")
        res = _build(out)
    else:  # pytest-xdist: the first worker builds, the others wait and reuse it
        from filelock import FileLock
        out = tmp_path_factory.getbasetemp().parent / "docs_html"
        with FileLock(str(out) + ".lock"):
            done = out / "_test_build.json"
            if done.is_file(): res = json.loads(done.read_text())
            else:
                out.mkdir(exist_ok=True)
                res = _build(out)
    rep = out / "_build_report.json"
    res["report"] = json.loads(rep.read_text()) if rep.is_file() else {}
    res["out"] = out
    print(f"docs build: {res['seconds']} s")
    return res


def _pages(site) -> dict[str, Page]:
    if "pages" not in site:
        site["pages"] = {p.name: Page(p.read_text(encoding="utf-8")) for p in sorted(site["out"].glob("*.html"))}
    return site["pages"]


# ------------------------------------------------------------------------------------------------------- tests


def test_build_succeeds(site):
    "The build exits 0; otherwise its problems (each naming its notebook) are the failure message"
    problems = site["report"].get("problems")
    msg = "\n".join(f"- {p}" for p in problems) if problems else site["log"][-6000:]
    assert site["rc"] == 0, f"tools/build_docs_html.py failed (exit {site['rc']}):\n{msg}"


def test_sidebar_lists_existing_notebooks():
    missing = [n for n in sidebar_notebooks() if not (NBS / n).exists()]
    assert not missing, f"sidebar.yml lists notebooks that are not in nbs/: {missing}"


def test_every_notebook_has_a_page(site):
    "One page per documented notebook (index + sidebar.yml); notebooks of nbs/ outside the sidebar get a page too"
    pages = set(_pages(site))
    expected = [n for n in documented_notebooks() if (NBS / n).exists()]
    missing = [f"{n} -> {page_of(n)}" for n in expected if page_of(n) not in pages]
    assert not missing, f"pages not built: {missing}"
    # notebooks in nbs/ but not in the sidebar still get a page (present at build time)
    built_from = set(site["report"].get("notebooks", {}))
    unlisted = [n for n in built_from if n not in documented_notebooks()]
    assert all(page_of(n) in pages for n in unlisted)
    assert len(pages) >= len(expected)


@pytest.mark.parametrize("nb", documented_notebooks())
def test_page_title_and_no_errors(site, nb):
    "The page has the notebook's title in <title> and as its visible <h1>, and shows no cell error"
    if not (NBS / nb).exists(): pytest.skip(f"{nb} is listed in sidebar.yml but not in nbs/ (see the sidebar test)")
    page = _pages(site).get(page_of(nb))
    assert page is not None, f"{nb}: page {page_of(nb)} was not built"
    title = notebook_title(nb)
    assert title, f"{nb}: the notebook has no `# Title` heading"
    assert unescape(page.title).strip() == title, f"{nb}: <title> is {page.title!r}, the notebook's title is {title!r}"
    assert title.replace("`", "") in page.h1, f"{nb}: no visible <h1> {title!r} (h1s: {page.h1[:3]})"
    assert not page.errors, f"{nb}: error output on the page: {page.errors[:3]}"


def _broken_links(site) -> tuple[list[str], list[str]]:
    "(links to missing pages, to notebooks, or absolute into the site but to no page; links to missing anchors)"
    pages = _pages(site)
    site_urls = {re.sub(r"^https?://", "", u).rstrip("/") + "/" for u in (
        "https://rnn-weightspace.github.io/rnn_weightspace",
        (yaml.safe_load((NBS / "nbdev.yml").read_text()) or {}).get("website", {}).get("site-url", ""),
    ) if u}
    bad, anchors = [], []
    for name, page in pages.items():
        for href in page.hrefs:
            u = urlsplit(href)
            full = u.netloc + u.path
            if u.scheme in ("http", "https") and any(full.startswith(s) or full + "/" == s for s in site_urls):
                if full.endswith((".html", ".ipynb")) or any(full + "/" == s or full == s for s in site_urls):
                    bad.append(f"{name}: absolute link into the site that is not a page: {href}")  # the build maps pages
                continue
            if u.scheme or u.netloc: continue
            if u.path.endswith(".ipynb"):
                bad.append(f"{name}: link to a notebook: {href}")
                continue
            target = u.path or name
            if not target.endswith(".html"): continue
            if target not in pages: bad.append(f"{name}: link to a missing page: {href}")
            elif u.fragment and u.fragment not in pages[target].ids:
                anchors.append(f"{name}: link to a missing anchor: {href}")
    return sorted(set(bad)), sorted(set(anchors))


def test_links(site):
    """Every relative link to a page resolves to a page of the site; no link to a notebook; no absolute link into the
    site that is not one of its pages"""
    assert _pages(site), "no pages built"
    bad = _broken_links(site)[0]
    assert not bad, f"{len(bad)} broken link(s):\n" + "\n".join(bad)


def test_anchors(site):
    """Every `page.html#id` link finds its id: nbdev links a backticked `Class.method` to `page.html#class.method`,
    which exists only where the notebook shows that method with `show_doc` (the Quarto site has the same ids)"""
    bad = _broken_links(site)[1]
    assert not bad, f"{len(bad)} link(s) to missing anchors:\n" + "\n".join(bad)


def test_build_is_fast(site):
    "The build fits comfortably in CI (2 cores); it reports its own time"
    assert site["seconds"] < 300, f"build took {site['seconds']} s"
    assert "pages in" in site["log"]


# ----------------------------------------------------------------------------------------------------- chromium


def _chromium():
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _pixels(png: Path):
    "Image as a float array in [0, 1] (PIL if installed, else matplotlib)"
    import numpy as np
    try:
        from PIL import Image
        return np.asarray(Image.open(png).convert("RGB"), dtype=float) / 255
    except ImportError:
        import matplotlib.image as mpimg
        a = mpimg.imread(png)
        return (a[..., :3] if a.ndim == 3 else a).astype(float)


@pytest.mark.skipif(_chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_screenshots_not_blank(site, tmp_path):
    "Headless Chromium draws the landing page and a notebook page: PNGs of the window size, not blank"
    pages = _pages(site)
    assert "index.html" in pages, "index.html was not built"
    nb_page = next((p for p in ["zoo.format.html", *map(page_of, documented_notebooks()[1:])] if p in pages), None)
    assert nb_page, "no notebook page built"
    for name in ("index.html", nb_page):
        png = tmp_path / (name + ".png")
        cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
               "--window-size=1280,2000", (site["out"] / name).resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert png.is_file() and png.stat().st_size > 0, f"{name}: no screenshot (exit {r.returncode}):\n{r.stderr[-2000:]}"
        px = _pixels(png)
        assert px.shape[:2] == (2000, 1280), f"{name}: screenshot is {px.shape}"
        non_white = (px < 0.95).any(axis=-1).mean()
        assert px.std() > 0.02 and non_white > 0.01, f"{name}: blank screenshot (std {px.std():.4f}, {non_white:.2%} non-white)"
        left, right = px[:, :250], px[:, 300:]  # the navigation and the page body are both drawn
        assert (left < 0.9).any(axis=-1).mean() > 0.001 and (right < 0.9).any(axis=-1).mean() > 0.005, f"{name}: half blank"
