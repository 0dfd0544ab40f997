"""One prepared GPU check of the library: correctness on the device, zoo-building throughput, stacked seeds, encoder training steps.

Meant to run once, within 8 minutes, on one large GPU (an NVIDIA H200). Parts (they run in the order environment,
correctness, zoo, stacked, encoders, so that a spent budget leaves out the encoder table last); each is guarded (a
failure is recorded as an error and the next part still runs) and a global time budget (--budget-s) marks the parts
it leaves out as "skipped: budget":

  1. environment  torch, CUDA and cuDNN versions, GPU name and memory, TF32 settings, CPU count and memory.
  2. correctness  on the device, float32 with TF32 off: the batched functional LSTM (`lstm_forward`, and `lstm_step`
                  chained) on 8 stacked models against each model's own `nn.LSTM` + `nn.Linear`
                  (`LSTMWeights.to_module()`), for the formal-language spec (6, 32, 2, 6) and the sequential-MNIST spec
                  (16, 32, 2, 10): max abs error of outputs and final states; one training step (per-model
                  cross-entropy, backward, AdamW) batched against per-model: loss, gradients, weights after the step;
                  and the zoo trainer end to end for one step: `train_runs_batched` on the device against the CPU
                  backend's `train_run` (per-model `nn.LSTM`), same runs. FAIL above 1e-4 (1e-3 for the sMNIST
                  trainer, whose digits are rotated on the device). The forward error with torch's default flags
                  (cuDNN LSTMs use TF32 on Ampere and newer) is reported as information.
  3. zoo          the batched zoo trainer (`train_runs_batched`) at N = --gpu-runs formal-language runs of the paper
                  preset shortened to --gpu-steps steps, against the authors' per-model `nn.LSTM` loop
                  (`zoo_throughput.baseline_run`) on the same device on --loop-runs runs: models/min, time per
                  model-step, ratio; the same batched run of the paper sequential-MNIST preset at --mnist-runs runs.
                  Each approach is timed twice (1 and 3 checkpoint evaluations) to split the time into training steps
                  and evaluations, which extrapolates to the paper zoos (1,000 runs x 20,000 steps, 9 checkpoints) in
                  GPU-hours (batched: in groups of N runs, i.e. `build_zoo(..., batch_runs=N)`; shard writing excluded).
  4. encoders     one full training step of every registry encoder and of the weight-blind emulator at the paper size,
                  batch 64, formal languages then sequential MNIST (`encoders.measure`: augmentation, encoder +
                  emulator forward, TV loss, backward, clipping, AdamW): ms/step, steps/s and peak GPU memory
                  (`torch.cuda.max_memory_allocated`), in float32 and with bfloat16 autocast around the loss as
                  `TrainConfig(amp=True)` does (CUDA only).
  5. stacked      the seeds of an encoder trained as one stacked model (`rnn_weightspace.stacked`) against the same
                  runs one by one, in the same process (`stacked_runs.measure`): R = --stack-runs seeds (15, the
                  paper's) of each stackable paper encoder and the weight-blind emulator at the paper size, batch 64, on
                  a 16-run zoo of each kind built here (first, bit-identity on the device: run 1 of a stack of seeds 0-2
                  against a stack of its own, 2 steps, each stackable encoder, FAIL if any bit differs); run-steps/s both ways, their ratio, peak GPU memory, in float32
                  and (formal languages) with bfloat16 autocast, whose losses are compared with float32's against the
                  spread of the loss over the seeds. The parameter transformer (dropout: it does not stack) is timed
                  one by one. From these, the projected time of the paper's Table 2 on this GPU: 6 encoders x 2 zoo
                  kinds x 15 seeds x 100k steps, training steps only (evaluations excluded).
  6. report       one markdown table of all rows on stdout; everything as JSON in --out.

Usage:
  python benchmarks/gpu_suite.py --out benchmarks/results/gpu_suite_<gpu>.json      # on the GPU (~3-5 min)
  python benchmarks/gpu_suite.py --parts environment stacked --out ...               # some parts only
  OMP_NUM_THREADS=1 python benchmarks/gpu_suite.py --smoke --device cpu            # CPU: only checks that it runs

On a CPU, --smoke (tiny encoder sizes, batch 4, N = 8 runs of 10 steps) takes well under a minute; its numbers mean
nothing, it checks the script. Without --out a smoke run writes its JSON into the temp folder, not the repository.
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from rnn_weightspace.lstm import LSTMSpec, LSTMWeights, lstm_forward, lstm_step

HERE = Path(__file__).resolve().parent
SPECS = {"formal-languages": (LSTMSpec(6, 32, 2, 6), 41), "sequential-mnist": (LSTMSpec(16, 32, 2, 10), 50)}
TOL = 1e-4


def bench(name: str):
    "A sibling benchmark script, imported as a module (its `main` is not run)."
    key = f"_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[key] = mod
    return sys.modules[key]


class BudgetExceeded(Exception):
    pass


class Suite:
    "The run's state: device, arguments, time budget, JSON parts and table rows."
    def __init__(self, args):
        self.args, self.dev = args, torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.t0 = time.perf_counter()
        self.parts, self.rows = {}, []

    def elapsed(self) -> float: return time.perf_counter() - self.t0
    def check(self, expected: float = 0.0):
        "Raise `BudgetExceeded` when the global time budget is spent, or would be by a case expected to take `expected` s."
        if self.elapsed() + expected > self.args.budget_s: raise BudgetExceeded()

    def sync(self):
        if self.cuda: torch.cuda.synchronize(self.dev)

    def clock(self, fn):
        "Wall seconds of `fn()` (device synchronised) and its result."
        self.sync(); t = time.perf_counter(); r = fn(); self.sync()
        return time.perf_counter() - t, r

    def reset_peak(self):
        if self.cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(self.dev)
    def peak_mb(self):
        return torch.cuda.max_memory_allocated(self.dev) / 2**20 if self.cuda else None

    def row(self, part: str, case: str, result: str, status: str = "ok"):
        self.rows.append({"part": part, "case": case, "result": result, "status": status})
        print(f"  [{self.elapsed():6.1f}s] {part} | {case} | {result} | {status}", file=sys.stderr, flush=True)

    def run_part(self, name: str, fn):
        "Run one part, recording its results, its status (ok / fail / error / partial / skipped) and its time."
        res = {}
        self.parts[name] = entry = {"status": "ok", "seconds": 0.0, "result": res}
        if self.elapsed() > self.args.budget_s:
            entry["status"] = "skipped: budget"
            self.row(name, "—", "not run: the time budget was spent", "skipped: budget")
            return
        t = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            entry["status"] = fn(self, res) or "ok"
        except BudgetExceeded:
            entry["status"] = "partial: budget"
            self.row(name, "remaining cases", "not run: the time budget was spent", "skipped: budget")
        except Exception as e:
            entry["status"] = f"error: {type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()
            self.row(name, "—", f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")[:200], "error")
            print(entry["traceback"], file=sys.stderr, flush=True)
        finally:
            entry["seconds"] = time.perf_counter() - t
            try:
                if self.cuda: torch.cuda.empty_cache()
            except Exception: pass                  # a broken device is already recorded by the part that broke it


# --- 1. environment -----------------------------------------------------------------------------------------------
def _precision_flags() -> dict:
    "The float32 matmul settings (new API where this torch has it; reading the legacy flags there can raise)."
    b = torch.backends
    if hasattr(b.cuda.matmul, "fp32_precision") and hasattr(getattr(b.cudnn, "rnn", None), "fp32_precision"):
        return {"cuda.matmul.fp32_precision": b.cuda.matmul.fp32_precision, "cudnn.rnn.fp32_precision": b.cudnn.rnn.fp32_precision,
                "cudnn.conv.fp32_precision": b.cudnn.conv.fp32_precision}
    return {"cuda.matmul.allow_tf32": b.cuda.matmul.allow_tf32, "cudnn.allow_tf32": b.cudnn.allow_tf32}


def environment(s: Suite, res: dict):
    import rnn_weightspace
    res.update(rnn_weightspace=rnn_weightspace.__version__, python=platform.python_version(), platform=platform.platform(),
               torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               device=str(s.dev), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
               omp_num_threads=os.environ.get("OMP_NUM_THREADS"), precision=_precision_flags(), smoke=s.args.smoke)
    try: res["ram_gib"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError): res["ram_gib"] = None
    if s.cuda:
        p = torch.cuda.get_device_properties(s.dev)
        free, total = torch.cuda.mem_get_info(s.dev)
        res.update(gpu=torch.cuda.get_device_name(s.dev), gpu_memory_gib=p.total_memory / 2**30, gpu_free_gib=free / 2**30,
                   gpu_capability=f"{p.major}.{p.minor}", gpu_sms=p.multi_processor_count, gpu_count=torch.cuda.device_count())
        dev = f"{res['gpu']}, {res['gpu_memory_gib']:.0f} GiB ({res['gpu_free_gib']:.0f} free), sm {res['gpu_capability']}"
    else:
        res["gpu"] = None
        dev = f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"
    ram = f"{res['ram_gib']:.0f} GiB RAM" if res["ram_gib"] else "RAM unknown"
    s.row("environment", "device", dev)
    s.row("environment", "software", f"torch {res['torch']}, CUDA {res['cuda']}, cuDNN {res['cudnn']}, python {res['python']}")
    s.row("environment", "host", f"{res['cpu_count']} CPUs, {ram}; fp32: " + ", ".join(f"{k}={v}" for k, v in res["precision"].items()))


# --- 2. correctness -----------------------------------------------------------------------------------------------
@contextmanager
def strict_fp32():
    "Full float32 matmuls in cuBLAS and cuDNN (no TF32) inside the block; the previous settings after it."
    b = torch.backends
    if hasattr(b.cuda.matmul, "fp32_precision") and hasattr(getattr(b.cudnn, "rnn", None), "fp32_precision"):
        targets = [b.cuda.matmul, b.cudnn.rnn, b.cudnn.conv]
        old = [t.fp32_precision for t in targets]
        for t in targets: t.fp32_precision = "ieee"
        try: yield
        finally:
            for t, v in zip(targets, old): t.fp32_precision = v
    else:
        old = b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32
        b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = False
        try: yield
        finally: b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = old


def _models_and_inputs(kind: str, M: int, N: int, device):
    "M perturbed models of the zoo kind's spec (larger weights than at initialisation) and inputs `[M, N, T, in]`."
    spec, T = SPECS[kind]
    g = torch.Generator().manual_seed(0)
    w = LSTMWeights.init(spec, (M,), generator=g).map(lambda t: t + 0.3 * torch.randn(t.shape, generator=g))
    if kind == "formal-languages": x = F.one_hot(torch.randint(0, spec.input_size, (M, N, T), generator=g), spec.input_size).float()
    else: x = torch.randn(M, N, T, spec.input_size, generator=g)
    y = torch.randint(0, spec.output_size, (M, N, T), generator=g)
    return w.to(device), x.to(device), y.to(device)


@torch.no_grad()
def forward_errors(w: LSTMWeights, x: torch.Tensor) -> dict:
    "Max abs errors of the batched forward / chained steps against each model's `nn.LSTM` + `nn.Linear`."
    y, (h, c) = lstm_forward(w, x)
    ys, state = [], None
    for t in range(x.shape[-2]):
        yt, state = lstm_step(w, x[..., t, :], state); ys.append(yt)
    ys = torch.stack(ys, -2)
    err = {"forward": 0.0, "state": 0.0, "step": 0.0, "output_scale": y.abs().max().item()}
    for i in range(len(w)):
        m = w[i].to_module()
        yr, (hr, cr) = m(x[i])
        err["forward"] = max(err["forward"], (y[i] - yr).abs().max().item())
        err["state"] = max(err["state"], (h[i] - hr).abs().max().item(), (c[i] - cr).abs().max().item())
        err["step"] = max(err["step"], (ys[i] - yr).abs().max().item(), (state[0][i] - hr).abs().max().item())
    return err


def step_errors(w: LSTMWeights, x: torch.Tensor, y: torch.Tensor, lr: float = 0.01, weight_decay: float = 1e-4) -> dict:
    "One training step as the batched zoo trainer takes it (per-model mean CE, summed, backward, AdamW) against per-model modules."
    M, V = len(w), w.spec.output_size
    wb = w.clone().requires_grad_()
    logits, _ = lstm_forward(wb, x)
    losses = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="none").view(M, -1).mean(1)
    losses.sum().backward()
    grads = LSTMWeights.from_state_dict({n: t.grad for n, t in wb.state_dict().items()})
    torch.optim.AdamW(wb.tensors(), lr=lr, weight_decay=weight_decay).step()
    ref_loss, ref_grads, ref_after = [], [], []
    for i in range(M):
        m = w[i].to_module()
        loss = F.cross_entropy(m(x[i])[0].reshape(-1, V), y[i].reshape(-1))
        loss.backward()
        p = dict(m.named_parameters())
        ref_loss.append(loss.detach()); ref_grads.append(LSTMWeights.from_state_dict({n: p[n].grad for n, _ in w.spec.layout}))
        torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=weight_decay).step()
        ref_after.append(LSTMWeights.from_module(m))
    gb, gr = grads.flatten(), LSTMWeights.stack(ref_grads).flatten()
    after_b, after_r = wb.detach().flatten(), LSTMWeights.stack(ref_after).flatten()
    return {"loss": (losses.detach() - torch.stack(ref_loss)).abs().max().item(), "grad": (gb - gr).abs().max().item(),
            "grad_scale": gr.abs().max().item(), "weights_after_step": (after_b - after_r).abs().max().item(),
            "weights_after_step_rel": ((after_b - after_r).norm(dim=1) / after_r.norm(dim=1)).max().item()}


def trainer_errors(kind: str, runs: int, device) -> dict:
    "The zoo trainer for one step: `train_runs_batched` on `device` against the CPU backend's per-model `train_run`."
    from rnn_weightspace.zoo.train import RunResult
    cfg = _paper(kind, smoke=True)                  # which digits does not matter for comparing the two trainers
    short = dict(n_runs=runs, steps=1, checkpoints=(0, 1), lr_steps=(0, 1), lr_values=(0.01, 0.003), n_rollouts=2)
    cfg = replace(cfg, **short, **({"eval_samples": 32} if kind == "formal-languages" else {"train_loss_images": 32}))
    b = cfg.train_runs_batched(list(range(runs)), device)
    c = RunResult.cat([cfg.train_run(r) for r in range(runs)])
    wb, wc = b.weights.flatten(), c.weights.flatten()
    step = torch.tensor(c.metadata["step"])
    assert b.metadata["step"] == c.metadata["step"] and b.metadata["run"] == c.metadata["run"]
    rel = (wb - wc).norm(dim=1) / wc.norm(dim=1)
    return {"init_identical": bool(torch.equal(wb[step == 0], wc[step == 0])), "weights_after_step_rel": rel[step == 1].max().item(),
            "weights_after_step": (wb - wc)[step == 1].abs().max().item(),
            "train_loss": max(abs(p - q) for p, q in zip(b.metadata["train_loss"], c.metadata["train_loss"]))}


def correctness(s: Suite, res: dict):
    M, N = (4, 4) if s.args.smoke else (8, 16)
    failed = []
    def verdict(errs: dict, keys, tol) -> str:
        bad = [k for k in keys if not errs[k] <= tol]
        if bad: failed.append(bad)
        return "FAIL" if bad else "PASS"
    for kind, (spec, T) in SPECS.items():
        s.check()
        w, x, y = _models_and_inputs(kind, M, N, s.dev)
        tag = f"{kind} {tuple(spec.to_dict().values())} x {M} models, {N} x {T} steps"
        with strict_fp32():
            fe = forward_errors(w, x)
            se = step_errors(w, x, y)
        info = {}
        if s.cuda: info["forward_default_flags"] = forward_errors(w, x)["forward"]   # torch's default TF32 settings
        res[kind] = {"forward": fe, "train_step": se, **info, "models": M, "sequences": N, "steps": T}
        dflt = f"; torch default flags (TF32 cuDNN): {info['forward_default_flags']:.1e}" if info else ""
        s.row("correctness", f"{tag}: lstm_forward / lstm_step vs nn.LSTM+nn.Linear (fp32)",
              f"max abs err forward {fe['forward']:.1e}, state {fe['state']:.1e}, steps {fe['step']:.1e} "
              f"(outputs up to {fe['output_scale']:.1f}){dflt}", verdict(fe, ("forward", "state", "step"), TOL))
        s.row("correctness", f"{tag}: one batched CE + AdamW step vs per-model (fp32)",
              f"max abs err loss {se['loss']:.1e}, grads {se['grad']:.1e} (grads up to {se['grad_scale']:.1e}), "
              f"weights after step {se['weights_after_step']:.1e} (rel {se['weights_after_step_rel']:.1e})",
              verdict(se, ("loss", "grad", "weights_after_step_rel"), TOL))
    for kind in SPECS:
        s.check()
        runs = 2 if s.args.smoke else 4
        tol = TOL if kind == "formal-languages" else 1e-3
        with strict_fp32(): te = trainer_errors(kind, runs, s.dev)
        res[f"trainer_{kind}"] = {**te, "runs": runs, "tolerance": tol}
        ok = verdict(te, ("weights_after_step_rel", "train_loss"), tol) == "PASS" and te["init_identical"]
        if not te["init_identical"]: failed.append(["init"])
        s.row("correctness", f"{kind} zoo trainer, 1 step: train_runs_batched on {s.dev.type} vs CPU train_run ({runs} runs)",
              f"init identical: {te['init_identical']}; weights after step rel err {te['weights_after_step_rel']:.1e} "
              f"(max abs {te['weights_after_step']:.1e}); train loss err {te['train_loss']:.1e}", "PASS" if ok else "FAIL")
    return "fail" if failed else "ok"


# --- 3. zoo throughput --------------------------------------------------------------------------------------------
def _paper(kind: str, smoke: bool = False):
    "The paper preset; a smoke run of sequential MNIST uses the shipped digits (the paper's 60k may not be on the machine)."
    if kind == "formal-languages":
        from rnn_weightspace.zoo.train import get_preset
        return get_preset("paper")
    from rnn_weightspace.zoo.sequential_mnist import get_preset
    return get_preset("paper", source="offline") if smoke else get_preset("paper")


def _short(cfg, n_runs: int, steps: int, checkpoints: tuple, smoke: bool):
    "The config shortened to `steps` (schedule compressed) with the given checkpoints; smaller evaluations in smoke runs."
    n = len(cfg.lr_values)                                   # the schedule's knots spread over the shorter run
    lr_steps = tuple(round(steps * i / (n - 1)) for i in range(n)) if n > 1 else (0,)
    cfg = replace(cfg, n_runs=n_runs, steps=steps, checkpoints=checkpoints, runs_per_shard=min(cfg.runs_per_shard, n_runs), lr_steps=lr_steps)
    if smoke: cfg = replace(cfg, **({"eval_samples": 100, "n_rollouts": 10} if cfg.kind == "formal-languages" else {"train_loss_images": 100, "n_rollouts": 10}))
    return cfg


def _split(t1: float, t3: float, steps: int) -> tuple[float, float]:
    "Seconds per training step and per checkpoint evaluation, from runs with 1 and with 3 evaluations."
    ev = max(0.0, (t3 - t1) / 2)
    return max(0.0, t1 - ev) / steps, ev


def zoo(s: Suite, res: dict):
    zt = bench("zoo_throughput")
    a, S = s.args, s.args.gpu_steps
    ck1, ck3 = (0,), (0, S // 2, S)
    for kind, N in (("formal-languages", a.gpu_runs), ("sequential-mnist", a.mnist_runs)):
        s.check()
        full = _paper(kind, a.smoke)
        out = res[kind] = {"runs": N, "steps": S}
        s.clock(lambda: _short(full, 2, 2, (0, 2), a.smoke).train_runs_batched([0, 1], s.dev))     # warm-up (kernels, data)
        t = {}
        for ck in (ck1, ck3):
            s.check(expected=t.get(1, 0.0))
            cfg = _short(full, N, S, ck, a.smoke)
            s.reset_peak()
            t[len(ck)], _ = s.clock(lambda: cfg.train_runs_batched(list(range(N)), s.dev))
            out[f"batched_seconds_{len(ck)}_eval"] = t[len(ck)]
        out["batched_peak_mb"] = s.peak_mb()
        step_s, eval_s = _split(t[1], t[3], S)
        r = zt.row(f"batched {N} runs", N, t[3], cfg)
        out["batched"] = {**r, "seconds_per_step": step_s, "seconds_per_eval": eval_s}
        groups = math.ceil(full.n_runs / N)
        hours = groups * (step_s * full.steps + eval_s * len(full.checkpoints)) / 3600
        out["paper_zoo_gpu_hours_batched"] = hours
        unit = "GPU-h" if s.cuda else "CPU-h"
        mem = f", peak {out['batched_peak_mb']:,.0f} MB" if s.cuda else ""
        s.row("zoo", f"{kind}: train_runs_batched, {N} runs x {S} steps, 3 evals",
              f"{t[3]:.1f} s, {r['models_per_min']:,.0f} models/min, {1e3 * t[3] / (N * S):.4f} ms/model-step "
              f"({1e3 * step_s:.1f} ms/batched step, {eval_s:.2f} s/eval){mem}")
        if kind == "formal-languages":
            n = a.loop_runs
            s.clock(lambda: zt.baseline_run(_short(full, 1, 2, (0, 2), a.smoke), 0, str(s.dev)))          # warm-up
            tb = {}
            for ck in (ck1, ck3):
                s.check(expected=tb.get(1, 0.0))
                cfg_b = _short(full, n, S, ck, a.smoke)
                tb[len(ck)], _ = s.clock(lambda: [zt.baseline_run(cfg_b, r, str(s.dev)) for r in range(n)])
                out[f"loop_seconds_{len(ck)}_eval"] = tb[len(ck)]
            bstep, beval = _split(tb[1] / n, tb[3] / n, S)
            rb = zt.row(f"per-model nn.LSTM loop {n} runs", n, tb[3], cfg_b)
            out["loop"] = {**rb, "seconds_per_step": bstep, "seconds_per_eval": beval}
            out["paper_zoo_gpu_hours_loop"] = full.n_runs * (bstep * full.steps + beval * len(full.checkpoints)) / 3600
            out["ratio_models_per_min"] = r["models_per_min"] / rb["models_per_min"]
            s.row("zoo", f"{kind}: per-model nn.LSTM + AdamW loop (authors' way), {n} runs x {S} steps, 3 evals",
                  f"{tb[3]:.1f} s, {rb['models_per_min']:,.1f} models/min, {rb['ms_per_step']:.3f} ms/model-step; "
                  f"batched is {out['ratio_models_per_min']:,.1f}x faster")
            s.row("zoo", f"{kind}: paper zoo ({full.n_runs} runs x {full.steps} steps, {len(full.checkpoints)} evals), extrapolated",
                  f"batched (groups of {N}): {hours:.2f} {unit}; per-model loop: {out['paper_zoo_gpu_hours_loop']:.1f} {unit}")
        else:
            s.row("zoo", f"{kind}: paper zoo ({full.n_runs} runs x {full.steps} steps, {len(full.checkpoints)} evals), extrapolated",
                  f"batched (groups of {N}): {hours:.2f} {unit}")


# --- 4. encoders ----------------------------------------------------------------------------------------------------
@contextmanager
def autocast_loss(enabled: bool):
    "bfloat16 autocast around `emulation_loss` (encoder + emulator forward + loss), as `train` does with amp=True."
    import rnn_weightspace.emulation as emulation
    if not enabled:
        yield; return
    loss = emulation.emulation_loss
    def wrapped(*args, **kwargs):
        with torch.autocast("cuda", dtype=torch.bfloat16): return loss(*args, **kwargs)
    emulation.emulation_loss = wrapped          # `encoders.measure` imports it when called
    try: yield
    finally: emulation.emulation_loss = loss


def encoders(s: Suite, res: dict):
    enc_bench = bench("encoders")
    from rnn_weightspace.encoders.base import ENCODERS
    a = s.args
    size, batch, repeats = ("tiny", 4, 1) if a.smoke else ("paper", a.batch, a.repeats)
    precisions = ["fp32", "amp"] if s.cuda else ["fp32"]
    res.update(size=size, batch=batch, repeats=repeats, precisions=precisions,
               amp="bfloat16 autocast around the loss (TrainConfig.amp), in `step` only: enc_fwd and enc_fb stay float32" if s.cuda else "not run: amp is a CUDA option of TrainConfig")
    rows, errors = res.setdefault("rows", []), 0
    order = [("formal-languages", p) for p in precisions] + [("sequential-mnist", p) for p in reversed(precisions)]
    for zoo_kind, prec in order:
        for e in [*ENCODERS, "weight-blind"]:
            s.check()
            case = dict(zoo=zoo_kind, size=size, encoder=e, batch=batch, threads=torch.get_num_threads(), repeats=repeats, device=str(s.dev))
            name = f"{zoo_kind} {size} {e}, batch {batch}, {prec}"
            s.reset_peak()
            try:
                with autocast_loss(prec == "amp"): r = enc_bench.measure(case)
            except Exception as ex:
                errors += 1
                rows.append({**case, "precision": prec, "error": f"{type(ex).__name__}: {ex}", "traceback": traceback.format_exc()})
                s.row("encoders", name, f"{type(ex).__name__}: {ex}".replace("|", "/").replace("\n", " ")[:200], "error")
                continue
            r.pop("peak_mb", None)                  # the process's RSS, meaningless when rows share a process
            base = enc_bench.AUTHORS_STEP.get(e) if zoo_kind == "formal-languages" and size == "paper" and batch == 64 else None
            r.update(precision=prec, steps_per_s=1000 / r["step"], authors_cpu_step_ms=base)
            rows.append(r)
            mem = f", peak {r['gpu_peak_mb']:,.0f} MB" if r["gpu_peak_mb"] is not None else ""
            vs = f", {base / r['step']:,.0f}x the authors' 2-core CPU step" if base else ""
            fwd = f"enc fwd {r['enc_fwd']:.1f} ms, {r['params']:,} params" if r["enc_fwd"] is not None else "no encoder"
            s.row("encoders", name, f"{r['step']:.1f} ms/step = {r['steps_per_s']:,.1f} steps/s ({fwd}){mem}{vs}")
    return f"error: {errors} of {len(rows)} rows failed" if errors else "ok"


# --- 5. stacked ----------------------------------------------------------------------------------------------------
def _stack_zoo(folder: Path, kind: str, smoke: bool) -> str:
    "A 16-run zoo of `kind` (short training: the timing does not depend on what the models learned)."
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    common = dict(n_runs=16, steps=20, checkpoints=(0, 10, 20), lr_steps=(0, 20), lr_values=(0.01, 0.003), n_rollouts=2,
                  runs_per_shard=8, preset="gpu-suite")
    cfg = (replace(FormalLanguageZooConfig(), eval_samples=50, **common) if kind == "formal-languages"
           else replace(SequentialMNISTZooConfig(), train_loss_images=50, **common))
    return str(build_zoo(cfg, folder / kind, workers=min(4, os.cpu_count() or 1), progress=False).root)


def stacked(s: Suite, res: dict):
    sr = bench("stacked_runs")
    a = s.args
    size, R, steps = ("tiny", 3, 1) if a.smoke else ("paper", a.stack_runs, 3)
    kinds = ("formal-languages",) if a.smoke else ("formal-languages", "sequential-mnist")
    res.update(size=size, runs=R, steps=steps, rows=[])
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            s.check()
            zoo = _stack_zoo(Path(tmp), kind, a.smoke)
            if kind == "formal-languages":                 # first: a run in a stack of 3 is the run in a stack of its own, bit for bit
                for e in sr.ENCODERS:
                    s.check()
                    r = sr.identity(zoo, e, "tiny", str(s.dev))
                    res.setdefault("identity", []).append(r)
                    failed += not r["equal"]
                    s.row("stacked", f"{kind} tiny {e}: run 1 of a stack of 3 vs a stack of its own, 2 steps",
                          f"max |diff| {r['max_diff_stack_of_one']:.2g} (vs one by one with fused LSTM kernels: {r['max_diff_train']:.2g})",
                          "PASS" if r["equal"] else "FAIL")
            precisions = [False, True] if s.cuda and kind == "formal-languages" else [False]
            fp32 = {}
            for amp in precisions:
                for e in [*sr.ENCODERS, "param-transformer"]:
                    s.check()
                    stackable = e != "param-transformer"
                    r = sr.measure(zoo, e, size, R, str(s.dev), steps=steps, warmup=1, batch=None if size == "paper" else 4, amp=amp,
                                   stacked_too=stackable)
                    r["zoo"] = kind
                    res["rows"].append(r)
                    prec = "bf16 autocast" if amp else "fp32"
                    if not stackable:
                        s.row("stacked", f"{kind} {size} {e}, {R} seeds, {prec}",
                              f"one by one only (dropout): {r['one_by_one_run_steps_per_s']:.1f} run-steps/s")
                        continue
                    mem = f", peak {r['peak_mb']:,.0f} MB" if r["peak_mb"] is not None else ""
                    extra = ""
                    if amp and e in fp32:                               # bf16 against fp32: the same runs, data and steps
                        import statistics
                        d = max(abs(x - y) for x, y in zip(r["losses"]["stacked"], fp32[e]))
                        spread = statistics.stdev(fp32[e]) if len(fp32[e]) > 1 else float("nan")
                        r.update(amp_loss_diff=d, seed_spread=spread, amp_within_spread=d < spread)
                        extra = f"; loss vs fp32 max |diff| {d:.2g}, seed spread (std) {spread:.2g}: {'within' if d < spread else 'NOT within'}"
                    else: fp32[e] = r["losses"]["stacked"]
                    s.row("stacked", f"{kind} {size} {e}, {R} seeds, {prec}",
                          f"stacked {r['stacked_run_steps_per_s']:.1f} vs one by one {r['one_by_one_run_steps_per_s']:.1f} run-steps/s: "
                          f"{r['ratio']:.2f}x{mem}{extra}")
    # the paper's Table 2 on this device: 6 encoders x 2 kinds x 15 seeds x 100k steps (fp32), stacked where possible
    from rnn_weightspace.encoders.base import PAPER_ENCODERS
    rows = [r for r in res["rows"] if not r["amp"]]
    if {(r["zoo"], r["encoder"]) for r in rows} >= {(k, e) for k in kinds for e in PAPER_ENCODERS}:
        steps_paper, seeds_paper = 100_000, 15
        per = lambda r: r["stacked_ms_per_run_step"] or r["one_by_one_ms_per_run_step"]   # ms per run-step: stacked where it stacks
        hours = sum(per(r) * seeds_paper * steps_paper for r in rows if r["encoder"] in PAPER_ENCODERS) / 3.6e6
        alone = sum(r["one_by_one_ms_per_run_step"] * seeds_paper * steps_paper for r in rows if r["encoder"] in PAPER_ENCODERS) / 3.6e6
        res.update(table2_hours_stacked=hours, table2_hours_one_by_one=alone)
        unit = "GPU-h" if s.cuda else "CPU-h"
        s.row("stacked", f"Table 2 ({len(PAPER_ENCODERS)} encoders x {len(kinds)} zoo kinds x {seeds_paper} seeds x {steps_paper:,} steps, "
              f"training steps only), projected", f"seeds stacked: {hours:.1f} {unit}; one by one: {alone:.1f} {unit}")
    return f"fail: {failed} stacked runs differ from their stack of one" if failed else "ok"


PARTS = {"environment": environment, "correctness": correctness, "zoo": zoo, "stacked": stacked, "encoders": encoders}   # the order they run in


# --- 6. report ------------------------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    lines = ["| part | case | result | status |", "|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['case']} | {r['result']} | {r['status']} |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, N=8 runs of 10 steps, batch 4: checks that the script runs (CPU)")
    p.add_argument("--budget-s", type=float, default=450, help="seconds; parts (and cases) after it are skipped")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/gpu_suite_<device>.json; "
                   "with --smoke a file in the temp folder)")
    p.add_argument("--gpu-runs", type=int, default=None, help="formal-language runs trained together (default 1000; smoke 8)")
    p.add_argument("--gpu-steps", type=int, default=None, help="steps of the shortened zoo runs (default 200; smoke 10)")
    p.add_argument("--mnist-runs", type=int, default=None, help="sequential-MNIST runs trained together (default 250; smoke 4)")
    p.add_argument("--loop-runs", type=int, default=None, help="runs of the per-model nn.LSTM loop (default 4; smoke 2)")
    p.add_argument("--batch", type=int, default=64, help="RNN checkpoints per encoder training step (smoke: 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed encoder steps per row, after one warm-up (smoke: 1)")
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="the parts to run (default: all, in order)")
    p.add_argument("--stack-runs", type=int, default=15, help="seeds per stack in part 5 (default 15, the paper's; smoke: 3)")
    a = p.parse_args(argv)
    for k, full, smoke in (("gpu_runs", 1000, 8), ("gpu_steps", 200, 10), ("mnist_runs", 250, 4), ("loop_runs", 4, 2)):
        if getattr(a, k) is None: setattr(a, k, smoke if a.smoke else full)
    if a.gpu_steps < 2: p.error("--gpu-steps must be at least 2")
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available(): p.error("--device cuda: CUDA is not available")
    if a.out is None:
        a.out = (Path(tempfile.gettempdir()) / f"gpu_suite_smoke_{dev.type}.json" if a.smoke
                 else HERE / "results" / f"gpu_suite_{dev.type}.json")

    s = Suite(a)
    for name, fn in PARTS.items():
        if name in a.parts: s.run_part(name, fn)
    total = s.elapsed()
    print(f"\nGPU suite on {s.parts.get('environment', {}).get('result', {}).get('gpu') or a.device}{' (smoke: sizes tiny, numbers meaningless)' if a.smoke else ''}, "
          f"torch {torch.__version__}; {total:.0f} s of a {a.budget_s:.0f} s budget\n")
    print(table(s.rows))
    status = {k: v["status"] for k, v in s.parts.items()}
    print("\nparts: " + ", ".join(f"{k} {v} ({s.parts[k]['seconds']:.0f} s)" for k, v in status.items()))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    a.out.write_text(json.dumps({"args": args, "seconds": total, "status": status, "parts": s.parts, "rows": s.rows, "table": table(s.rows)},
                                indent=1, default=str))
    print(f"JSON written to {a.out}")
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
