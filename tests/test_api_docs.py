"""Every public symbol is documented the nbdev way: a docstring, and a docments comment beside every parameter (what
the documentation pages show in each signature)."""
import importlib
import inspect
import pkgutil

import pytest
from fastcore.docments import docments

import rnn_weightspace


def _public():
    "(qualified name, function) for every public function, and every public method of a public class."
    for m in pkgutil.walk_packages(rnn_weightspace.__path__, "rnn_weightspace."):
        if m.name.endswith("_modidx"): continue
        mod = importlib.import_module(m.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != mod.__name__: continue
            yield f"{m.name}.{name}", obj
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if (inspect.isfunction(v) and (not k.startswith("_") or k == "__init__") and _has_source(v)
                            and v.__module__.startswith("rnn_weightspace")):   # not e.g. the `__init__` typing.Protocol adds
                        yield f"{m.name}.{name}.{k}", v


def _has_source(f) -> bool:
    "False for code that has no source of its own, e.g. the `__init__` a dataclass generates."
    try: inspect.getsource(f); return True
    except (OSError, TypeError): return False


PUBLIC = list(_public())


def test_there_is_a_public_api():
    assert len(PUBLIC) > 200


def test_every_public_symbol_has_a_docstring():
    missing = [n for n, f in PUBLIC if not inspect.getdoc(f)]
    assert not missing, missing


def test_every_parameter_has_a_docment():
    missing = []
    for n, f in PUBLIC:
        if not inspect.isfunction(f): continue
        d = docments(f, full=False, args_kwargs=True)
        sig = inspect.signature(f)
        und = [p for p, v in sig.parameters.items() if p not in ("self", "cls") and v.kind != v.VAR_POSITIONAL and not d.get(p)]
        if und: missing.append(f"{n}: {und}")
    assert not missing, "\n".join(missing)


def test_kwargs_comments_are_not_shown_as_the_return_value():
    # nbdev drops a `**kwargs` comment from the rendered signature, and without a comment of its own on the `) ->` line
    # the `**kwargs` comment would be shown as the description of the return value
    bad = []
    for n, f in PUBLIC:
        if not inspect.isfunction(f): continue
        kw = [p for p, v in inspect.signature(f).parameters.items() if v.kind == v.VAR_KEYWORD]
        if kw:
            ret, kwdoc = docments(f, full=False).get("return"), docments(f, full=False, args_kwargs=True).get(kw[0])
            if ret and ret == kwdoc: bad.append(n)
    assert not bad, bad
