#!/usr/bin/env python
"""Check, function for function, that the library's `paper` configurations compute what the authors' released modules
compute (github.com/vincentherrmann/rnn-weights-representation-learning, commit 4013c6f).

The released code has no licence, so none of it is in this repository: clone it yourself and point this script at the
folder that holds its modules:

    git clone https://github.com/vincentherrmann/rnn-weights-representation-learning released
    python scripts/check_released.py released/rnn_weights_representation_learning

For every check the script builds the released module and ours at the paper's configuration, copies the released
parameters into ours (the mapping is written out below, one function per module), runs both on the same random LSTM
weights of both zoo architectures (formal languages: 6-32x2-6; sequential MNIST: 16-32x2-10) and compares the
outputs and the gradients of every parameter. It prints one line per check and exits non-zero if any differ by more
than the tolerance. Modules of the released repository that only load data or log (wandb, torchvision, the dataset
scripts) are replaced by empty stand-ins when they cannot be imported; none of them is used by the checked code.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from rnn_weightspace.emulation import Emulator, emulation_loss
from rnn_weightspace.encoders.base import InputDomain, make_encoder
from rnn_weightspace.lstm import LSTMSpec, LSTMWeights, lstm_forward
from rnn_weightspace.symmetry import HiddenSymmetry

SPECS = {"formal-languages": LSTMSpec(6, 32, 2, 6), "sequential-mnist": LSTMSpec(16, 32, 2, 10)}
CHECKS: dict[str, Callable] = {}  # name -> fn(released_modules, spec, kind) -> dict of results


def check(name: str):
    "Register a check under `name`."
    def deco(fn): CHECKS[name] = fn; return fn
    return deco


def _stub(name: str) -> types.ModuleType:
    "An empty module whose every attribute is a do-nothing class (for imports of data-loading and logging code)."
    m = types.ModuleType(name)
    m.__getattr__ = lambda attr: type(attr, (), {"__init__": lambda self, *a, **k: None})
    return m


def load_released(path: str | Path) -> types.SimpleNamespace:
    "Import the released modules from `path` (stand-ins for the data and logging modules they import but we do not run)."
    path = Path(path).resolve()
    if not (path / "modules_rnn_encoders.py").exists():
        raise SystemExit(f"{path} does not hold the released modules (no modules_rnn_encoders.py)")
    sys.path.insert(0, str(path))
    for name in ("wandb", "torchvision", "torchvision.transforms", "npy_append_array", "dataset_classes",
                 "dataset_creation_formal_language", "dataset_creation_sequential_mnist", "evaluation_visualization"):
        try: importlib.import_module(name)
        except Exception: sys.modules[name] = _stub(name)
    mods = {n: importlib.import_module(n) for n in ("utilities", "modules_rnn_models", "modules_neural_functionals",
                                                    "modules_rnn_encoders", "lstm_neuron_permutation_testing")}
    try: mods["training_script"] = importlib.import_module("training_script")
    except Exception as e: print(f"note: training_script could not be imported ({type(e).__name__}: {e})")
    return types.SimpleNamespace(**mods)


def released_shapes(spec: LSTMSpec) -> list[tuple[str, torch.Size]]:
    "The released code's `(name, shape)` list: `nn.LSTM` order, names of its hand-written cells (`lstm_cells.{l}.i2h.weight`...)."
    names = {"weight_ih": "i2h.weight", "weight_hh": "h2h.weight", "bias_ih": "i2h.bias", "bias_hh": "h2h.bias"}
    out = []
    for name, shape in spec.layout:
        if name.startswith("lstm."):
            kind, layer = name[5:].rsplit("_l", 1)
            name = f"lstm_cells.{layer}.{names[kind]}"
        out.append((name, torch.Size(shape)))
    return out


def released_params(w: LSTMWeights) -> dict[str, torch.Tensor]:
    "Our weights `[M]` as the released code's batched parameter dict."
    return dict(zip([n for n, _ in released_shapes(w.spec)], w.tensors()))


def random_models(spec: LSTMSpec, n: int = 8, seed: int = 0) -> LSTMWeights:
    "`n` models moved away from their initialisation (a nonlinear regime), float64."
    g = torch.Generator().manual_seed(seed)
    w = LSTMWeights.init(spec, (n,), generator=g)
    return w.map(lambda t: t + 0.3 * torch.randn(t.shape, generator=g)).to(torch.float64)


def compare(ours: torch.nn.Module, theirs: torch.nn.Module, f_ours: Callable, f_theirs: Callable,
            pairs: list[tuple[torch.nn.Parameter, torch.nn.Parameter]]) -> dict:
    "Forward difference and the largest gradient difference over the matched parameter pairs `(ours, theirs)`."
    for m in (ours, theirs): m.zero_grad(set_to_none=True)
    a, b = f_ours(), f_theirs()
    (a * torch.linspace(-1, 1, a.numel(), dtype=a.dtype).reshape(a.shape)).sum().backward()
    (b * torch.linspace(-1, 1, b.numel(), dtype=b.dtype).reshape(b.shape)).sum().backward()
    grad = max(((p.grad if p.grad is not None else torch.zeros_like(p)) - (q.grad if q.grad is not None else torch.zeros_like(q))).abs().max().item()
               for p, q in pairs)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    return {"forward": (a - b).abs().max().item(), "scale": b.abs().max().item(), "grad": grad,
            "params_ours": n_ours, "params_released": n_theirs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("released", help="folder with the released modules (rnn_weights_representation_learning/ of a clone)")
    ap.add_argument("--only", nargs="*", help="run only these checks")
    ap.add_argument("--tol", type=float, default=1e-9, help="largest allowed difference (float64)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rel = load_released(args.released)
    bad = 0
    for name, fn in CHECKS.items():
        if args.only and name not in args.only: continue
        for kind, spec in SPECS.items():
            torch.manual_seed(0)
            r = fn(rel, spec, kind)
            tol = r.get("tol", args.tol)                       # a check run in float32 (the released code casts) says so
            ok = r["forward"] <= tol * max(1.0, r["scale"]) and r["grad"] <= tol * max(1.0, r["scale"])
            bad += not ok
            extra = f"; {r['note']}" if r.get("note") else ""
            print(f"{'ok  ' if ok else 'FAIL'} {name:<22} {kind:<17} max|Δ| forward {r['forward']:.1e}, gradients {r['grad']:.1e}; "
                  f"parameters: ours {r['params_ours']:,}, released {r['params_released']:,}{extra}")
    raise SystemExit(1 if bad else 0)


# ---------------------------------------------------------------------------------------------------------------
# The checks: one per released module. Each builds the released module and ours (paper configuration), copies the
# released parameters into ours, and returns `compare(...)` (optionally with a "note").
# ---------------------------------------------------------------------------------------------------------------


# --- DWS: `NFLSTMParameterEncoder` (NPLinearLSTM layers) -> `rnn_weightspace.encoders.dws.DWSEncoder` -------------

class _InOurLayout:
    "A released parameter seen in the layout of ours: `.grad` through `to_ours` (for `compare`'s gradient pairs)."
    def __init__(self, p: torch.nn.Parameter, to_ours: Callable): self.p, self.to_ours = p, to_ours
    @property
    def grad(self): return self.to_ours(self.p.grad if self.p.grad is not None else torch.zeros_like(self.p))


def dws_parameter_map(ours, theirs) -> list[tuple[torch.nn.Parameter, torch.nn.Parameter, Callable]]:
    """`(ours, theirs, to_ours)` for every parameter of our `DWSEncoder` and the released `NFLSTMParameterEncoder`.
    Per output tensor of an `NPLSTMLayer`, our term `self` is their pointwise `Conv2d`, `glob` their `Linear` on the
    global vector (`_rc`), `cols` their row-broadcast `Conv1d` (`_r`, a vector over the columns) and `rows` their
    column-broadcast `Conv1d` (`_c`); a bias's `rows` is their `bias_{l}` and its `glob` their `bias_{l}_rc`. The
    readout is their last i2h layer. Their maps are channels-first (`[C_out, K, ...]`), ours `[K, C_out]`."""
    w_ours = lambda t: t.reshape(t.shape[0], -1).t()                           # [C_out, K(, 1(, 1))] -> [K, C_out]
    same = lambda t: t
    np_layers = [m for m in theirs.np_model if hasattr(m, "c_in")]             # skip the ReLUs
    assert len(np_layers) == len(ours.layers)
    out = []
    for mine, rel in zip(ours.layers, np_layers):
        L = mine.spec.num_layers
        names = {}                                                             # our output tensor -> (their prefix, l)
        for l in range(L + 1):
            names[f"wi{l}" if l < L else "wo"] = ("i2h_layer", l)
            names[f"bi{l}" if l < L else "bo"] = ("i2h_bias", l)
        for l in range(L): names |= {f"wh{l}": ("h2h_layer", l), f"bh{l}": ("h2h_bias", l)}
        suffix = {"self": "", "glob": "_rc", "cols": "_r", "rows": "_c"}
        for key in mine.weight:
            tensor, term = key.rsplit("_", 1)
            prefix, l = names[tensor]
            mod = getattr(rel, f"{prefix}_{l}{'' if prefix.endswith('bias') and term == 'rows' else suffix[term]}")
            out += [(mine.weight[key], mod.weight, w_ours), (mine.bias[key], mod.bias, same)]
        out += [(mine.embed_in, rel.in_embed, lambda t: t[0, :, 0, :].t()),    # [1, C, 1, I] -> [I, C]
                (mine.embed_wo, rel.out_embed, lambda t: t[0, :, :, 0].t()),   # [1, C, O, 1] -> [O, C]
                (mine.embed_bo, rel.out_bias_embed, lambda t: t[0].t())]       # [1, C, O] -> [O, C]
    lin_ours = [m for m in ours.head if isinstance(m, torch.nn.Linear)]
    lin_theirs = [m for m in theirs.mlp_model if isinstance(m, torch.nn.Linear)]
    assert len(lin_ours) == len(lin_theirs)
    for a, b in zip(lin_ours, lin_theirs): out += [(a.weight, b.weight, same), (a.bias, b.bias, same)]
    # every parameter of both models is matched exactly once
    for model, side in ((ours, 0), (theirs, 1)):
        matched = [id(t[side]) for t in out]
        assert len(set(matched)) == len(matched) == len(list(model.parameters())), f"unmatched parameters ({side=})"
        assert set(matched) == {id(p) for p in model.parameters()}
    return out


def _init_note(ours, theirs, table) -> str:
    """Freshly initialised, ours against theirs: per released module (uniform ±bound, weight and bias together) the
    ratio of the largest |p|, and over all the IO embeddings (standard normal) the ratio of the std."""
    module_of = {id(p): name for name, m in theirs.named_modules() for p in m.parameters(recurse=False)}
    module_of |= {id(p): name for name, p in theirs.named_parameters() if name.endswith("embed")}  # each its own group
    groups: dict[str, list] = {}
    for p, q, _ in table: groups.setdefault(module_of[id(q)], []).append((p.detach().flatten(), q.detach().flatten()))
    r_max, emb = [], []
    for name, pairs in groups.items():
        a, b = torch.cat([p for p, _ in pairs]), torch.cat([q for _, q in pairs])
        if name.endswith("embed"): emb.append((a, b))
        else: r_max.append((a.abs().max() / b.abs().max()).item())
    r_std = (torch.cat([a for a, _ in emb]).std() / torch.cat([b for _, b in emb]).std()).item()
    return (f"fresh init, ours/released: max|p| of {len(r_max)} uniform groups {min(r_max):.2f}-{max(r_max):.2f}, "
            f"std of the {len(emb)} embeddings {r_std:.2f}")


@check("dws")
def check_dws(rel, spec: LSTMSpec, kind: str) -> dict:
    "The paper-size `DWSEncoder` against `NFLSTMParameterEncoder(num_np_channels=[48]*4, mlp_hidden_sizes=[128])`."
    from rnn_weightspace.encoders.dws import DWSEncoder
    theirs = rel.modules_rnn_encoders.NFLSTMParameterEncoder(released_shapes(spec), num_np_channels=[48] * 4,
                                                             mlp_hidden_sizes=[128], output_size=16)
    ours = DWSEncoder.from_size("paper", spec)
    table = dws_parameter_map(ours, theirs)
    note = _init_note(ours, theirs, table)
    ours, theirs = ours.double(), theirs.double()
    with torch.no_grad():
        for p, q, to_ours in table: p.copy_(to_ours(q))
    w = random_models(spec)
    prep = rel.modules_neural_functionals.prepare_lstm_params_for_np
    r = compare(ours, theirs, lambda: ours(w), lambda: theirs(prep(released_params(w))),
                [(p, _InOurLayout(q, to_ours)) for p, q, to_ours in table])
    return r | {"note": note}



DOMAINS = {"formal-languages": InputDomain.tokens(6), "sequential-mnist": InputDomain.continuous(16, -0.4242, 2.8215)}


def _copy(dst: torch.Tensor, src: torch.Tensor):
    with torch.no_grad(): dst.copy_(src.reshape(dst.shape))


def _linear(ours: nn.Linear, theirs: nn.Linear) -> list:
    _copy(ours.weight, theirs.weight); _copy(ours.bias, theirs.bias)
    return [(ours.weight, theirs.weight), (ours.bias, theirs.bias)]


@check("layerwise-stats")
def check_stats(rel, spec, kind):
    theirs = rel.modules_rnn_encoders.ParameterStatisticsEncoder(released_shapes(spec), mlp_hidden_sizes=[128, 16]).double()
    ours = make_encoder("layerwise-stats", spec, size="paper").double()
    pairs = _linear(ours.mlp[0], theirs.mlp_model[0]) + _linear(ours.mlp[2], theirs.mlp_model[2])
    w = random_models(spec)
    return compare(ours, theirs, lambda: ours(w), lambda: theirs(released_params(w)), pairs)


@check("flat")
def check_flat(rel, spec, kind):
    theirs = rel.modules_rnn_encoders.FlatParameterEncoder(released_shapes(spec), [128, 128, 128, 16]).double()
    ours = make_encoder("flat", spec, size="paper").double()
    pairs = [p for i in (0, 2, 4, 6) for p in _linear(ours.mlp[i], theirs.mlp_model[i])]
    w = random_models(spec)
    return compare(ours, theirs, lambda: ours(w), lambda: theirs(released_params(w)), pairs)


@check("param-transformer")
def check_transformer(rel, spec, kind):
    theirs = rel.modules_rnn_encoders.ParameterTransformerEncoder(released_shapes(spec), num_heads=2, num_transformer_layers=6,
                                                                  transformer_size=128, output_size=16).double().eval()
    ours = make_encoder("param-transformer", spec, size="paper").double().eval()      # eval: dropout off in both
    names = [f"lstm_cells_{l}_{k}" for l in range(spec.num_layers) for k in ("i2h", "h2h")] + ["linear"]
    pairs = [p for i, n in enumerate(names) for p in _linear(ours.projections[i], theirs.input_transformations[n])]
    _copy(ours.summary, theirs.compression_token); _copy(ours.position, theirs.positional_encoding)
    pairs += [(ours.summary, theirs.compression_token), (ours.position, theirs.positional_encoding)]
    sd_t = dict(theirs.transformer.named_parameters())
    for n, p in ours.transformer.named_parameters(): _copy(p, sd_t[n]); pairs.append((p, sd_t[n]))
    pairs += _linear(ours.readout, theirs.output_projection)
    w = random_models(spec, n=4)
    r = compare(ours, theirs, lambda: ours(w), lambda: theirs(released_params(w)), pairs)
    r["note"] = f"dropout {ours.transformer.layers[0].dropout.p} in both (compared in eval mode)"
    return r


def _released_prober(rel, spec, kind, interactive):
    model = rel.modules_rnn_models.RNNFunctionalizable(hidden_size=spec.hidden_size, input_size=spec.input_size,
                                                       output_size=spec.output_size, num_layers=spec.num_layers, input_batch=True).double()
    f = lambda params, x, hidden: torch.func.functional_call(model, params, args=(x, hidden))
    vf = torch.vmap(f, in_dims=(0, 0, (0, 0)), out_dims=(0, (0, 0)))
    tokens = kind == "formal-languages"
    kw = dict(interactive_weight=1.0, static_weight=0.0) if interactive else dict(interactive_weight=0.0, static_weight=1.0)
    enc = rel.modules_rnn_encoders.InteractiveEncoder(
        probing_input_dim=spec.input_size, probing_output_dim=spec.output_size, vfunc=vf, hidden_sizes=[128], activation=nn.ReLU,
        device="cpu", hidden_size_rnn=256, probing_sequence_length=22 if tokens else 50, num_parallel_ps=1, encoding_size=128,
        output_size=16, num_rnn_layers=2, recurrent_vfunc=True, probing_input_softmax=tokens,
        initial_hidden_state=model.get_initial_hidden_states(1, device="cpu"), dropout=0.0, residual=True,
        open_recurrent_connections=False, **kw)
    return enc.double()


def _probing(rel, spec, kind, interactive):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)                 # the released encoder makes its zero states in the default dtype
    try: return _probing64(rel, spec, kind, interactive)
    finally: torch.set_default_dtype(old)


def _probing64(rel, spec, kind, interactive):
    theirs = _released_prober(rel, spec, kind, interactive)
    name = "probe-interactive" if interactive else "probe-static"
    ours = make_encoder(name, spec, size="paper", domain=DOMAINS[kind]).double()
    pairs = []
    for l, cell in enumerate(theirs.rnn_cells):
        lstm = ours.aggregator.layers[l]
        for a, b in (("weight_ih_l0", "weight_ih"), ("weight_hh_l0", "weight_hh"), ("bias_ih_l0", "bias_ih"), ("bias_hh_l0", "bias_hh")):
            _copy(getattr(lstm, a), getattr(cell.cell, b)); pairs.append((getattr(lstm, a), getattr(cell.cell, b)))
    for a in ("bos", "eos"): _copy(getattr(ours, a), getattr(theirs, a)); pairs.append((getattr(ours, a), getattr(theirs, a)))
    if not interactive:
        with torch.no_grad(): ours.codes.copy_(theirs.probing_encodings[:ours.probe_length])
    pairs += _linear(ours.reader.linear, theirs.probing_output_transform[0])
    pairs += _linear(ours.probe_generator.up[0], theirs.proj_up[0])
    pairs += _linear(ours.probe_generator.decoder[0], theirs.probing_input_decoder[0])
    pairs += _linear(ours.probe_generator.decoder[2], theirs.probing_input_decoder[2])
    pairs += _linear(ours.readout[0], theirs.output_transform[0]) + _linear(ours.readout[2], theirs.output_transform[2])
    w = random_models(spec, n=4)
    r = compare(ours, theirs, lambda: ours(w), lambda: theirs(released_params(w)), pairs)
    if not interactive:                                     # the codes: ours hold the first L rows of theirs
        r["grad"] = max(r["grad"], (ours.codes.grad - theirs.probing_encodings.grad[:ours.probe_length]).abs().max().item())
    unused = [n for n, p in theirs.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    r["note"] = f"released parameters without gradient (unused): {', '.join(unused)}"
    return r


@check("probe-static")
def check_static(rel, spec, kind): return _probing(rel, spec, kind, False)


@check("probe-interactive")
def check_interactive(rel, spec, kind): return _probing(rel, spec, kind, True)


def _stored_rollouts(spec, kind, w, n=1, seed=0, dtype=torch.float16):
    "A batch in both layouts: stored float16 log-softmax (FL) or raw logits (MNIST) of the models on random inputs."
    g = torch.Generator().manual_seed(seed)
    M = w.batch_shape[0]
    if kind == "formal-languages":
        tokens = torch.randint(0, spec.input_size, (M, n, 42), generator=g)
        x = nn.functional.one_hot(tokens[..., :-1], spec.input_size).to(w.dtype)
        stored = lstm_forward(w, x)[0].log_softmax(-1).to(dtype)                         # as the released FL zoo stores them
        return {"parameters": w.flatten(), "sequences": tokens, "logits": stored}, {"weights": w, "tokens": tokens, "log_probs": stored}
    x = torch.randn(M, n, 50, spec.input_size, generator=g, dtype=w.dtype)
    stored = lstm_forward(w, x)[0].to(dtype)                                             # raw logits, as the released MNIST zoo
    return {"parameters": w.flatten(), "sequences": x, "logits": stored}, {"weights": w, "inputs": x, "log_probs": stored}


@check("emulator+loss")
def check_emulator(rel, spec, kind):
    import argparse
    ts, tokens = rel.training_script, kind == "formal-languages"
    results = {}
    for ours_kind, their_kind in (("tv", "total_variation"), ("kl", "kl"), ("reverse_kl", "kl_reverse")):
        torch.manual_seed(0)
        t_enc = rel.modules_rnn_encoders.ParameterStatisticsEncoder(released_shapes(spec), mlp_hidden_sizes=[128, 16])
        t_emu = ts.EmulatorLSTM(rnn_embedding_size=16, obs_dim=spec.input_size, probing_output_dim=spec.output_size,
                                hidden_size=256, num_layers=2, only_condition_bos=1)
        args = argparse.Namespace(one_hot_tokens=int(tokens), permutation_augmentation=0, encoder_type="layerwise_statistics",
                                  normalize_embedding=1, sequence_batch_size=1, probing_input_dim=spec.input_size,
                                  probing_output_dim=spec.output_size, criterion=their_kind)
        state = rel.utilities.ModelState(rnn_weight_encoder=t_enc, emulator=t_emu, combined_model=None, device="cpu",
                                         rnn_params_shapes=released_shapes(spec), rnn_model=None, vfunc=None, args=args)
        state.combined_model = ts.CombinedEncoderEmulator(t_enc, t_emu, args=args, state=state)
        enc = make_encoder("layerwise-stats", spec, size="paper")
        emu = Emulator.from_size("paper", spec.input_size, spec.output_size)
        pairs = _linear(enc.mlp[0], t_enc.mlp_model[0]) + _linear(enc.mlp[2], t_enc.mlp_model[2])
        for a, b in (("input_projection", "input_projection"), ("embedding_projection", "embedding_projection"), ("readout", "output_projection")):
            pairs += _linear(getattr(emu, a), getattr(t_emu, b))
        for n, p in emu.lstm.named_parameters(): _copy(p, getattr(t_emu.lstm, n)); pairs.append((p, getattr(t_emu.lstm, n)))
        w = random_models(spec, n=6).to(torch.float32)       # float32: the released code casts its inputs with .float()
        mod_o, mod_t = nn.ModuleList([enc, emu]), nn.ModuleList([t_enc, t_emu])
        for stored in (torch.float32, torch.float16):   # float16 as the zoos store them: the released code renormalises
            theirs_batch, ours_batch = _stored_rollouts(spec, kind, w, dtype=stored)   # in float16, we in float32
            r = compare(mod_o, mod_t, lambda: emulation_loss(enc, emu, ours_batch, DOMAINS[kind], ours_kind, reduction="none"),
                        lambda: ts.training_iteration(theirs_batch, state), pairs)
            results[ours_kind, str(stored)[6:]] = r
    f32 = {k: r for (k, st), r in results.items() if st == "float32"}
    worst = max(f32.values(), key=lambda r: r["forward"])
    f16 = max(r["forward"] for (k, st), r in results.items() if st == "float16")
    return {**worst, "grad": max(r["grad"] for r in f32.values()), "tol": 1e-6,
            "note": f"float32 (the released code casts its inputs); kinds tv, kl, reverse_kl; with the stored targets in float16 "
                    f"the losses differ by up to {f16:.0e}, the released code normalising them in float16"}


@check("augmentation")
def check_augmentation(rel, spec, kind):
    w = random_models(spec, n=5)
    g = torch.Generator().manual_seed(3)
    perms = [torch.randperm(spec.hidden_size, generator=g) for _ in range(spec.num_layers)]
    theirs = released_params(w)
    for l, p in enumerate(perms): theirs = rel.lstm_neuron_permutation_testing.permuteLSTMNeurons(theirs, l, permutation=p)
    ident = HiddenSymmetry.identity(spec, ())
    ours = HiddenSymmetry(perms, ident.signs).apply(w)                 # one permutation per layer, shared by the batch
    diff = max((a - b).abs().max().item() for a, b in zip(released_params(ours).values(), theirs.values()))
    return {"forward": diff, "scale": 1.0, "grad": 0.0, "params_ours": 0, "params_released": 0,
            "note": "permuted weights compared (one permutation per layer for the batch)"}


if __name__ == "__main__":
    main()
