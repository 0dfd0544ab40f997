#!/usr/bin/env python
"""Build the documentation as plain HTML pages without Quarto (a local/CI check of the docs).

    python tools/build_docs_html.py [--out DIR] [--nbs NBS_DIR] [--workers N]

How it works:

1. Stage: copy `pyproject.toml` and the notebooks folder into a temporary directory. `nbdev-proc-nbs` always writes
   into `<folder of pyproject.toml>/_proc`, so running it in the staged copy keeps the repository untouched.
2. Process: run `nbdev-proc-nbs` there (it executes the cells nbdev needs for `show_doc`: exported cells and every
   cell containing an import). When a notebook fails, it is named, skipped, and `nbdev-proc-nbs` is run again (its
   cache keeps what was already processed), so one run reports every failing notebook.
3. Repair: drop the two keys nbformat rejects (`has_sd` on cells, the float `metadata.execution.total`), turn the
   YAML front matter (title, description, output-file) into the page header, and apply the Quarto cell options that
   matter for reading (`echo: false`, `output: false`, `include: false`).
4. Render: nbconvert's `HTMLExporter` (lab template, images embedded) writes one self-contained page per notebook,
   named like Quarto names it (`12_zoo.format.ipynb` -> `zoo.format.html`, `index.ipynb` -> `index.html`).
5. Link: every link to a page of this site (`NN_name.ipynb`, `name.html`, nbdev's absolute
   `https://<doc_host><doc_baseurl>/module.html#symbol`) is rewritten to the local page; heading ids follow Pandoc's
   rule (what Quarto and nbdev's symbol anchors use); a navigation sidebar built from `sidebar.yml` is added to every
   page.
6. Check: cell error outputs, links to missing pages or anchors, links to notebooks, sidebar entries without a
   notebook. Problems are printed (naming the notebook) and written to `<out>/_build_report.json`; the exit status is
   1 when there is any.

Writes only into the output folder (default: a new temporary folder) and its own temporary staging folder.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
try: import tomllib
except ImportError: import tomli as tomllib  # Python 3.10 (tomli comes with `build`, an nbdev dependency)
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parent.parent
REPORT = "_build_report.json"

# ----------------------------------------------------------------------------------------------------------- helpers


def page_name(nb_name: str) -> str:
    "Quarto/nbdev page name of a notebook file name (nbdev's `nbpath2html`): `12_zoo.format.ipynb` -> `zoo.format.html`"
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", nb_name.lower()).rsplit(".", 1)[0] + ".html"


def read_frontmatter(src: str) -> dict:
    "YAML front matter (`---` ... `---`) at the start of a raw cell, or {}"
    m = re.match(r"\s*---\s*\n(.*?)\n---\s*(\n|$)", src, re.S)
    if not m: return {}
    try: d = yaml.safe_load(m.group(1))
    except yaml.YAMLError: return {}
    return d if isinstance(d, dict) else {}


def notebook_title(nb: dict) -> str:
    "Title of a (source or processed) notebook: front matter `title`, else the first `# Title` markdown heading"
    for c in nb.get("cells", []):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "raw" and (t := read_frontmatter(src).get("title")): return str(t).strip()
        if c.get("cell_type") == "markdown":
            m = re.search(r"^#\s+(.+?)\s*$", src, re.M)
            if m: return m.group(1).strip()
    return ""


def load_sidebar(path: Path) -> list:
    "The `website.sidebar.contents` of sidebar.yml"
    d = yaml.safe_load(path.read_text()) if path.exists() else None
    sb = ((d or {}).get("website") or {}).get("sidebar") or {}
    if isinstance(sb, list): sb = sb[0] if sb else {}
    return sb.get("contents") or []


def sidebar_notebooks(contents) -> list[str]:
    "Notebook file names listed in the sidebar, in order"
    out = []
    for o in contents or []:
        if isinstance(o, str): out.append(o)
        elif isinstance(o, dict):
            if "contents" in o: out += sidebar_notebooks(o["contents"])
            elif o.get("href"): out.append(o["href"])
    return [o for o in out if o.endswith((".ipynb", ".qmd", ".md"))]


def pandoc_id(text: str) -> str:
    "Pandoc's auto identifier (used by Quarto, and by nbdev's `module.html#symbol` anchors)"
    t = re.sub(r"[^\w\s.-]", "", text.strip(), flags=re.U)
    t = re.sub(r"\s+", "-", t).lower()
    t = re.sub(r"^[^a-z]+", "", t)
    return t or "section"


_MD_ATTR_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}")


def md_fix(src: str) -> str:
    "Drop Pandoc link attributes (`[source](url){target=\"_blank\" style=...}`, from `show_doc`): plain markdown links"
    return _MD_ATTR_LINK.sub(lambda m: f"[{m.group(1)}]({m.group(2)})", src)


_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def split_directives(src: str) -> tuple[dict, str]:
    "Leading `#| key: value` lines of a code cell -> ({key: value}, the rest)"
    lines, d = src.splitlines(), {}
    i = 0
    while i < len(lines) and (m := _DIRECTIVE.match(lines[i])):
        d[m.group(1).lower()] = m.group(2).lower()
        i += 1
    return d, "\n".join(lines[i:])


# ------------------------------------------------------------------------------------------------ nbdev-proc-nbs

_ERR_NB = re.compile(r"Error in notebook: (.+?) in cell (\d+)")


def proc_nbs(stage: Path, nbs_name: str, notebooks: list[Path], titles: dict[str, str], env: dict, log) -> dict:
    "Run `nbdev-proc-nbs` in `stage`, skipping failing notebooks and rerunning; {notebook name: error} of failures"
    sibling = Path(sys.executable).parent / "nbdev-proc-nbs"  # the one of this Python's environment, if there
    exe = str(sibling) if sibling.exists() else (shutil.which("nbdev-proc-nbs") or "nbdev-proc-nbs")
    proc_dir, failed = stage / "_proc", {}
    by_title = {}
    for n, t in titles.items(): by_title.setdefault(t, []).append(n)

    env = dict(env)
    if not shutil.which("quarto", path=env.get("PATH")):
        # `nbdev-proc-nbs` installs Quarto (curl + `sudo dpkg -i`) when it finds none on PATH; it does not use it.
        stub = stage / "_bin" / "quarto"
        stub.parent.mkdir(exist_ok=True)
        stub.write_text("#!/bin/sh\necho 'quarto stub of tools/build_docs_html.py: Quarto is not used here' >&2\nexit 1\n")
        stub.chmod(0o755)
        env["PATH"] = f"{stub.parent}{os.pathsep}{env.get('PATH', '')}"

    def run(extra):
        return subprocess.run([exe, *extra], cwd=stage, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    for _ in range(len(notebooks) + 1):
        skip = "^([_.]" + "".join("|" + re.escape(n) + "$" for n in failed) + ")"
        r = run(["--skip-file-re", skip])
        if r.returncode == 0: break
        err = r.stderr + r.stdout
        new = {}
        for m in _ERR_NB.finditer(err):
            for n in by_title.get(m.group(1).strip(), []):
                if n not in failed: new[n] = _error_excerpt(err, m.start())
        if not new:  # not attributable from the message: try each notebook not processed yet on its own
            todo = [p.name for p in notebooks if p.name not in failed and not (proc_dir / p.name).exists()]
            for n in todo:
                r1 = run(["--file-glob", n, "--skip-file-re", skip])
                if r1.returncode != 0: new[n] = _error_excerpt(r1.stderr + r1.stdout, None)
        if not new:
            failed["nbdev-proc-nbs"] = _error_excerpt(err, None)
            break
        for n, e in new.items(): log(f"FAIL {nbs_name}/{n}: nbdev-proc-nbs: {e.splitlines()[-1] if e else ''}")
        failed.update(new)
    return failed


def _error_excerpt(err: str, pos) -> str:
    "The exception message (with the failing cell's source) from a traceback"
    if pos is not None:
        tail = err[pos:]
        end = tail.find("\nTraceback")
        return (tail if end < 0 else tail[:end]).strip()[:2000]
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return "\n".join(lines[-15:])[:2000]


# ------------------------------------------------------------------------------------------------------ rendering

NAV_CSS = """
#site-nav { position: fixed; top: 0; left: 0; bottom: 0; width: 260px; overflow-y: auto; box-sizing: border-box;
  padding: 16px 12px; background: #f7f7f9; border-right: 1px solid #ddd; font-size: 14px; line-height: 1.45;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; z-index: 10; }
#site-nav .site-title { display: block; font-size: 18px; font-weight: 600; margin-bottom: 12px; color: #2780e3;
  text-decoration: none; }
#site-nav .section { margin: 12px 0 4px; font-weight: 600; color: #333; }
#site-nav ul { list-style: none; margin: 0; padding-left: 8px; }
#site-nav li a { color: #2780e3; text-decoration: none; display: block; padding: 1px 4px; border-radius: 3px; }
#site-nav li a.active { background: #2780e3; color: white; }
#site-nav li.missing { color: #b00; }
body.jp-Notebook { margin-left: 260px; }
header.page-header { padding: 0 var(--jp-notebook-padding, 10px); margin: 16px 0 12px; }
header.page-header h1.title { font-size: 2.2em; margin: 0 0 6px; }
header.page-header div.description { font-style: italic; font-size: 125%; opacity: .75; }
a.source-link { float: right; font-size: smaller; }
@media (max-width: 800px) { #site-nav { position: static; width: auto; } body.jp-Notebook { margin-left: 0; } }
"""


def inline_md(text: str) -> str:
    "Escaped text with `code` spans (for titles)"
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def build_nav(contents, pages: dict[str, dict], site_title: str) -> str:
    "Sidebar HTML (with the placeholder `@@CURRENT@@` class hook per page) from sidebar.yml contents"
    listed = set(sidebar_notebooks(contents))

    def item(nb):
        name = Path(nb).name
        p = pages.get(name)
        if p is None: return f'<li class="missing">{html.escape(name)} (missing)</li>'
        if p.get("failed"): return f'<li class="missing">{inline_md(p["title"] or name)} (not built)</li>'
        return f'<li><a href="{p["page"]}" data-page="{p["page"]}">{inline_md(p["title"] or name)}</a></li>'

    def walk(cs):
        out = []
        for o in cs or []:
            if isinstance(o, str): out.append(item(o))
            elif isinstance(o, dict) and "section" in o:
                inner = walk(o.get("contents"))
                if inner: out.append(f'<li><div class="section">{html.escape(str(o["section"]))}</div><ul>{inner}</ul></li>')
            elif isinstance(o, dict) and o.get("href"):
                h = o["href"]
                if h.endswith((".ipynb", ".qmd", ".md")): out.append(item(h))
                else: out.append(f'<li><a href="{html.escape(h)}">{html.escape(str(o.get("text", h)))}</a></li>')
        return "".join(out)

    body = walk(contents)
    others = [n for n in pages if n not in {Path(o).name for o in listed} and pages[n]["page"] != "index.html"]
    if others: body += '<li><div class="section">Other pages</div><ul>' + "".join(item(n) for n in others) + "</ul></li>"
    return (f'<nav id="site-nav"><a class="site-title" href="index.html">{html.escape(site_title)}</a>'
            f"<ul>{body}</ul></nav>")


def _prepare(nb_path: Path) -> tuple[dict, dict]:
    "Load a processed notebook, repair it for nbformat, apply Quarto cell options; (notebook, front matter)"
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    fm, cells = {}, []
    for c in nb.get("cells", []):
        c.pop("has_sd", None)
        ex = c.get("metadata", {}).get("execution")
        if isinstance(ex, dict): ex.pop("total", None)
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "raw" and not fm and (d := read_frontmatter(src)):
            fm = d
            continue
        if c.get("cell_type") == "markdown":
            if not src.strip() or src.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
            c["source"] = md_fix(src)
        if c.get("cell_type") == "code":
            d, rest = split_directives(src)
            if d.get("include") == "false": continue
            c["source"] = rest
            tags = set(c.get("metadata", {}).get("tags", []))
            if d.get("echo") == "false" or not rest.strip(): tags.add("remove_input")
            if d.get("output") == "false": tags.add("remove_output")
            c.setdefault("metadata", {})["tags"] = sorted(tags)
            for o in c.get("outputs", []):
                md = o.get("data", {}).get("text/markdown")
                if md is not None: o["data"]["text/markdown"] = md_fix("".join(md) if isinstance(md, list) else md)
            if not c["outputs"] and "remove_input" in tags: continue
        cells.append(c)
    nb["cells"] = cells
    nb.setdefault("metadata", {}).pop("execution", None)
    return nb, fm


def _error_outputs(nb: dict) -> list[str]:
    "Descriptions of error outputs in a notebook's cells"
    out = []
    for i, c in enumerate(nb.get("cells", [])):
        where = f"cell {i}" + (f" (id {c['id']})" if c.get("id") else "")
        for o in c.get("outputs", []) or []:
            if o.get("output_type") == "error":
                out.append(f"{where}: {o.get('ename')}: {o.get('evalue')}")
            elif o.get("output_type") == "stream" and "Traceback (most recent call last)" in "".join(o.get("text", "")):
                out.append(f"{where}: a traceback printed to {o.get('name')}")
    return out


_EXPORTER = None


def render_one(job: dict) -> dict:
    "Render one processed notebook to `job['out']/<page>`; returns {'page', 'title', 'problems', 'ids'}"
    import nbformat
    from bs4 import BeautifulSoup
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    from nbconvert.preprocessors import TagRemovePreprocessor


    src, name = Path(job["src"]), job["name"]
    problems = []
    nb_json, fm = _prepare(src)
    title = str(fm.get("title") or job["fallback_title"] or name)
    problems += [f"{name}: error output in {e}" for e in _error_outputs(nb_json)]
    nb_json["metadata"]["title"] = title
    nb = nbformat.reads(json.dumps(nb_json), as_version=4)  # (joins multi-line strings, as reading a file does)
    nbformat.validate(nb)

    global _EXPORTER
    if _EXPORTER is None:  # one per worker process: the template is compiled once
        _EXPORTER = HTMLExporter(template_name="lab", embed_images=True, exclude_input_prompt=True,
                                 exclude_output_prompt=True)
        _EXPORTER.register_preprocessor(TagRemovePreprocessor(
            remove_input_tags={"remove_input"}, remove_all_outputs_tags={"remove_output"}, enabled=True), enabled=True)
    body, _ = _EXPORTER.from_notebook_node(nb, resources={"metadata": {"name": title, "path": job["nb_dir"]}})

    soup = BeautifulSoup(body, "html.parser")
    # heading ids as Pandoc/Quarto make them (nbdev's `module.html#symbol` anchors rely on them)
    seen: dict[str, int] = {}
    for h in soup.find_all(re.compile(r"^h[1-6]$")):
        for a in h.find_all("a", class_="anchor-link"): a.decompose()
        base = pandoc_id(h.get_text(" ", strip=True))
        n = seen.get(base, 0)
        seen[base] = n + 1
        hid = base if n == 0 else f"{base}-{n}"
        h["id"] = hid
        a = soup.new_tag("a", attrs={"class": "anchor-link", "href": "#" + hid})
        a.string = "¶"
        h.append(a)
    # links to pages of this site -> local pages
    for a in soup.find_all("a", href=True):
        new = _rewrite(a["href"], job)
        if new is not None: a["href"] = new
        if a.get_text(strip=True) == "source" and "/blob/" in a["href"]:  # show_doc's link to the code
            a["class"] = a.get("class", []) + ["source-link"]
            a["target"] = "_blank"
    # header (title, description), navigation, css
    head = soup.head
    st = soup.new_tag("style"); st.string = NAV_CSS; head.append(st)
    main = soup.find("main") or soup.body
    hdr = BeautifulSoup(f'<header class="page-header"><h1 class="title" id="title-block">{inline_md(title)}</h1>'
                        + (f'<div class="description">{markdown2html_mistune(str(fm["description"]))}</div>'
                           if fm.get("description") else "") + "</header>", "html.parser")
    main.insert(0, hdr)
    nav = BeautifulSoup(job["nav"], "html.parser")
    for a in nav.find_all("a", attrs={"data-page": job["page"]}): a["class"] = ["active"]
    soup.body.insert(0, nav)
    (Path(job["out"]) / job["page"]).write_text(str(soup), encoding="utf-8")
    ids = sorted({t["id"] for t in soup.find_all(id=True)} | {t["name"] for t in soup.find_all("a", attrs={"name": True})})
    return {"page": job["page"], "title": title, "problems": problems, "ids": ids}


def _rewrite(href: str, job: dict) -> str | None:
    "Local page for a link to this site (None: leave the link alone)"
    u = urlsplit(href)
    path = u.path
    if u.scheme or u.netloc:
        full = f"{u.netloc}{u.path}"
        hit = next((p for p in job["site_prefixes"] if full.startswith(p) or full + "/" == p), None)
        if u.scheme not in ("http", "https", "") or hit is None: return None
        path = full[len(hit):] if full.startswith(hit) else ""
    elif not path:
        return None  # same-page anchor
    elif job["baseurl"] and path.startswith(job["baseurl"] + "/"):
        path = path[len(job["baseurl"]) + 1:]
    name = path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else ""
    if not name: target = "index.html"
    else: target = job["pages_by_key"].get(name.lower())
    if target is None: return None
    return target + (f"#{u.fragment}" if u.fragment else "")


# ----------------------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output folder (default: a new temporary folder); its *.html are replaced")
    ap.add_argument("--nbs", type=Path, help="notebooks folder (default: the nbs_path of pyproject.toml)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for rendering")
    ap.add_argument("--keep-stage", action="store_true", help="keep the staging folder (for debugging)")
    args = ap.parse_args(argv)
    t0 = time.time()
    log = lambda s: print(s, flush=True)

    repo_toml = REPO / "pyproject.toml"
    repo_nbs = (tomllib.loads(repo_toml.read_text()).get("tool", {}).get("nbdev", {}).get("nbs_path", "nbs")
                if repo_toml.exists() else "nbs")
    nbs = (args.nbs or REPO / repo_nbs).resolve()
    pyproj = next((p for p in (nbs.parent / "pyproject.toml", REPO / "pyproject.toml") if p.exists()), None)
    if not nbs.is_dir() or pyproj is None:
        log(f"FAIL: notebooks folder {nbs} or pyproject.toml not found")
        return 2
    cfg = tomllib.loads(pyproj.read_text()).get("tool", {}).get("nbdev", {})
    out = (args.out or Path(tempfile.mkdtemp(prefix="rnnws-docs-html-"))).resolve()
    for forbidden in (nbs, pyproj.parent / cfg.get("doc_path", "_docs"), REPO / "_docs", REPO / "nbs"):
        if out == forbidden or forbidden in out.parents:
            log(f"FAIL: refusing to write into {forbidden}")
            return 2
    if out == REPO or out in REPO.parents or out == pyproj.parent:
        log(f"FAIL: --out must be a folder of its own, not {out}")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.html"): f.unlink()
    (out / REPORT).unlink(missing_ok=True)

    # site settings (nbdev.yml / pyproject) for recognising absolute links to the site
    meta = yaml.safe_load((nbs / "nbdev.yml").read_text()) if (nbs / "nbdev.yml").exists() else {}
    website = (meta or {}).get("website") or {}
    site_title = website.get("title") or cfg.get("title") or "Documentation"
    urls = [website.get("site-url", "")]
    user, repo = cfg.get("user"), cfg.get("repo")
    project = tomllib.loads(pyproj.read_text()).get("project", {})
    urls += [project.get("urls", {}).get("Documentation", "")]
    if cfg.get("doc_host"): urls.append(cfg["doc_host"].rstrip("/") + cfg.get("doc_baseurl", ""))
    if user and repo: urls.append(f"https://{user}.github.io/{repo}")
    prefixes = sorted({re.sub(r"^https?://", "", u).rstrip("/") + "/" for u in urls if u}, key=len, reverse=True)
    baseurl = next((urlsplit("https://" + p).path.rstrip("/") for p in prefixes if urlsplit("https://" + p).path.strip("/")), "")

    # 1. stage
    stage = Path(tempfile.mkdtemp(prefix="rnnws-docs-stage-"))
    problems: list[str] = []
    results, ids, t_proc, t_render = {}, {}, 0.0, 0.0
    try:
        shutil.copy2(pyproj, stage / "pyproject.toml")
        nbs_name = cfg.get("nbs_path", "nbs")
        snbs = stage / nbs_name
        shutil.copytree(nbs, snbs, ignore=shutil.ignore_patterns("_proc", "_docs", ".ipynb_checkpoints", "__pycache__", ".quarto"))
        notebooks = sorted(p for p in snbs.glob("*.ipynb") if not p.name.startswith(("_", ".")))
        for p in sorted(snbs.glob("*/**/*.ipynb")):
            if not any(part.startswith(("_", ".")) for part in p.relative_to(snbs).parts):
                log(f"note: {p.relative_to(snbs)} is in a subfolder: this check renders only {nbs_name}/*.ipynb")
        src_titles, bad_json = {}, []
        for p in notebooks:
            try: src_titles[p.name] = notebook_title(json.loads(p.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                problems.append(f"{p.name}: not a valid notebook ({e})"); bad_json.append(p)
        for p in bad_json: p.unlink(); notebooks.remove(p)
        contents = load_sidebar(nbs / "sidebar.yml")
        for s in sidebar_notebooks(contents):
            if not (nbs / s).exists(): problems.append(f"sidebar.yml lists {s}, which is not in {nbs.name}/")
        for p in notebooks:
            if p.name != "index.ipynb" and p.name not in {Path(s).name for s in sidebar_notebooks(contents)}:
                log(f"note: {p.name} is not listed in sidebar.yml (shown under 'Other pages')")

        # 2. nbdev-proc-nbs
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1"), "MPLBACKEND": "Agg",
               "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore")}
        t1 = time.time()
        failed = proc_nbs(stage, nbs_name, notebooks, src_titles, env, log)
        t_proc = time.time() - t1
        for n, e in failed.items(): problems.append(f"{n}: nbdev-proc-nbs failed:\n{e}")

        # 3-5. render
        pages = {p.name: {"page": page_name(p.name), "title": src_titles.get(p.name, "")} for p in notebooks}
        proc_dir = stage / "_proc"
        for n, p in pages.items():
            pn = proc_dir / n
            if pn.exists():
                fm = next((read_frontmatter("".join(c.get("source", ""))) for c in
                           json.loads(pn.read_text(encoding="utf-8")).get("cells", []) if c.get("cell_type") == "raw"), {})
                if fm.get("output-file"): p["page"] = fm["output-file"]
                if fm.get("title"): p["title"] = str(fm["title"])
        for n, p in pages.items(): p["failed"] = not (proc_dir / n).exists()
        keys = {}
        for n, p in pages.items():
            stem = n.rsplit(".", 1)[0].lower()
            for k in (n.lower(), stem + ".html", stem + ".qmd", stem + ".md", p["page"].lower(),
                      p["page"].lower()[:-5] + ".ipynb", p["page"].lower()[:-5]):
                keys.setdefault(k, p["page"])
        nav = build_nav(contents, pages, site_title)
        jobs = [{"src": str(proc_dir / n), "name": n, "page": p["page"], "fallback_title": p["title"], "out": str(out),
                 "nb_dir": str(snbs), "nav": nav, "site_prefixes": prefixes, "baseurl": baseurl, "pages_by_key": keys}
                for n, p in pages.items() if (proc_dir / n).exists()]
        t2 = time.time()
        results = {}
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            futs = {j["name"]: pool.submit(render_one, j) for j in jobs}
            for n, f in futs.items():
                try: results[n] = f.result()
                except Exception as e:  # noqa: BLE001 - name the notebook, keep going
                    problems.append(f"{n}: rendering failed: {type(e).__name__}: {e}")
                    log(f"FAIL {n}: rendering: {type(e).__name__}: {e}")
        t_render = time.time() - t2
        for r in results.values(): problems += r["problems"]

        # 6. links
        ids = {r["page"]: set(r["ids"]) for r in results.values()}
        by_page = {r["page"]: n for n, r in results.items()}
        problems += check_links(out, ids, by_page, {p["page"] for p in pages.values() if p["failed"]})
    finally:
        if args.keep_stage: log(f"staging folder kept: {stage}")
        else: shutil.rmtree(stage, ignore_errors=True)

    total = time.time() - t0
    report = {"out": str(out), "pages": sorted(ids), "titles": {r["page"]: r["title"] for r in results.values()},
              "notebooks": {n: r["page"] for n, r in results.items()}, "problems": problems,
              "seconds": {"proc": round(t_proc, 1), "render": round(t_render, 1), "total": round(total, 1)}}
    (out / REPORT).write_text(json.dumps(report, indent=2))
    for p in problems: log(f"PROBLEM {p}")
    log(f"{len(results)} pages in {out} ({total:.1f} s: nbdev-proc-nbs {t_proc:.1f} s, nbconvert {t_render:.1f} s); "
        f"{len(problems)} problem(s)")
    return 1 if problems else 0


def check_links(out: Path, ids: dict[str, set], by_page: dict[str, str], failed: set = frozenset()) -> list[str]:
    """Relative links of every page: target page exists, its anchor exists, no link to a notebook (pages that failed
    to build, already reported, are not reported again as link targets)"""
    from bs4 import BeautifulSoup
    problems = []
    for page in sorted(ids):
        soup = BeautifulSoup((out / page).read_text(encoding="utf-8"), "html.parser")
        for a in soup.find_all("a", href=True):
            u = urlsplit(a["href"])
            if u.scheme or u.netloc: continue
            where = f"{by_page.get(page, page)} ({page})"
            if u.path.endswith(".ipynb"):
                problems.append(f"{where}: link to a notebook: {a['href']}"); continue
            target = u.path or page
            if u.path and not u.path.endswith(".html"): continue
            if target in failed: continue
            if target not in ids:
                problems.append(f"{where}: link to a missing page: {a['href']}")
            elif u.fragment and u.fragment not in ids[target]:
                problems.append(f"{where}: link to a missing anchor: {a['href']}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
