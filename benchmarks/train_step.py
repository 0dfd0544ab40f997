"""How fast is one emulation training step, and where does the time go?

The step of `rnn_weightspace.training.train`, reproduced piece by piece on a real zoo folder (memory-mapped shards)
and timed per part:

  data        the step's rows chosen, weights and rollouts read from the memory-mapped zoo, moved to the device;
  augment     the step's random hidden-unit symmetry (only for encoders that need it; shared by the batch, as released);
  encoder fwd   encoder forward;
  emulator fwd  emulator forward + loss;
  backward    backward of both;
  optimizer   gradient clipping per module + AdamW step.

Rows: every encoder and the weight-blind emulator, at the given sizes, one process and one torch thread per row
(--threads to change). At the paper size each encoder also gets a `released` row, measured in the same process,
alternating with ours step by step (machine noise hits both alike): the authors' training step structured as their
released code is (`released_baseline.py`: one model trained at a time, their
memory-mapped data path and DataLoader, the parameter dict and its permutation augmentation, the probing encoders'
probed RNNs through `torch.func.functional_call` under `vmap`), and the `ratio` column is ours / released in steps
per second. (The authors' own code, measured on another day on a machine of this kind, gave 6.1, 7.75, 2.1, 3.2 and
3.15 steps/s for layer-wise statistics, flat, DWS, static and interactive probing: `shared/reference/baselines.md`;
numbers from different runs are not compared here.)

Usage:
  python benchmarks/train_step.py --zoo ZOO_DIR                 # paper and small sizes on an existing zoo
  python benchmarks/train_step.py                               # builds a small formal-language zoo in a temp folder first
  python benchmarks/train_step.py --sizes tiny --steps 5        # quick check
  python benchmarks/train_step.py --zoo ZOO_DIR --device cuda   # on a GPU
  python benchmarks/train_step.py --zoo ZOO_DIR --sizes paper --out benchmarks/results/train_step_cpu_1t.json   # keep the rows
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

PARTS = ("data", "augment", "encoder fwd", "emulator fwd", "backward", "optimizer")


def ours_stepper(case: dict):
    "One training step of `train` for `case`, as a function of the step number returning its part times (ms); and the encoder's size."
    import torch
    torch.set_num_threads(case["threads"])
    from torch import nn
    from rnn_weightspace.emulation import divergence, rollout_inputs
    from rnn_weightspace.encoders.base import input_domain
    from rnn_weightspace.training import augmentation, batch_indices, build_models, step_symmetry, train_preset
    from rnn_weightspace.zoo.dataset import ZooDataset
    from rnn_weightspace.zoo.reader import Zoo

    dev = torch.device(case["device"])
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    zoo = Zoo(case["zoo"])
    cfg = train_preset("paper" if case["size"] == "paper" else case["size"], encoder=case["encoder"], size=case["size"],
                       batch_size=case["batch"])
    enc, emu = build_models(cfg, zoo)
    modules = [m for m in (enc, emu) if m is not None]
    for m in modules: m.to(dev).train()
    opt = torch.optim.AdamW([p for m in modules for p in m.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    ds = ZooDataset(zoo.split("train"), n_rollouts=1, targets=[], seed=0)
    domain = input_domain(zoo)
    perms, signs = augmentation(cfg, enc)

    def step(s: int) -> list[float]:
        t = [time.perf_counter()]
        def mark(): sync(); t.append(time.perf_counter())
        torch.manual_seed(s); ds.set_epoch(s)
        b = ds.batch(batch_indices(len(ds), cfg.batch_size, 0, s))
        b = {k: v.to(dev) for k, v in b.items()}; mark()
        if perms or signs:
            b["weights"] = step_symmetry(cfg, zoo.spec, s, signs, dev).apply(b["weights"])
        mark()
        x = rollout_inputs(b, domain)
        B, n, T, _ = x.shape
        z = enc(b["weights"]).repeat_interleave(n, 0) if enc is not None else None; mark()
        log_q = emu(z, x.reshape(B * n, T, -1)).log_softmax(-1)
        loss = divergence(b["log_probs"].float().log_softmax(-1).reshape(B * n, T, -1), log_q, cfg.divergence).mean(); mark()
        opt.zero_grad(set_to_none=True); loss.backward(); mark()
        for m in modules: nn.utils.clip_grad_norm_(m.parameters(), cfg.clip)
        opt.step(); mark()
        return [(c - a) * 1000 for a, c in zip(t[:-1], t[1:])]
    return step, enc.n_params if enc is not None else 0


def released_stepper(case: dict, folder: Path):
    "The released-style step (`released_baseline.ReleasedStep`) of `case['encoder']` at the paper size, as `ours_stepper`."
    import torch
    torch.set_num_threads(case["threads"])
    sys.path.insert(0, str(Path(__file__).parent))
    from released_baseline import ReleasedStep
    from rnn_weightspace.zoo.reader import Zoo
    r = ReleasedStep(Zoo(case["zoo"]), case["encoder"], folder, batch_size=case["batch"])

    def step(s: int) -> list[float]:
        t = [time.perf_counter()]
        b = r.next_batch(); t.append(time.perf_counter()); t.append(t[-1])    # data; augmentation is inside the encoder's part
        z = r.encode(b); t.append(time.perf_counter())
        loss = r.emulation_loss(z, b); t.append(time.perf_counter())
        r.opt.zero_grad(set_to_none=True); loss.backward(); t.append(time.perf_counter())
        r.clip_and_step(); t.append(time.perf_counter())
        return [(c - a) * 1000 for a, c in zip(t[:-1], t[1:])]
    return step, sum(p.numel() for p in r.encoder.parameters())


def _row(case: dict, impl: str, times: list[list[float]], params: int) -> dict:
    "Median of every part and of the whole step over the timed steps."
    med = {p: statistics.median(t[i] for t in times) for i, p in enumerate(PARTS)}
    return {**case, "impl": impl, **med, "total": statistics.median(sum(t) for t in times), "params": params}


def measure(case: dict) -> list[dict]:
    """Our step alone; or, with `case['released']`, ours and the released-style step in one process, alternating step by
    step (which one goes first alternates too), so that both see the same machine."""
    steppers = {"ours": ours_stepper(case)}
    with tempfile.TemporaryDirectory() as d:
        if case.get("released"): steppers["released"] = released_stepper(case, Path(d))
        times = {k: [] for k in steppers}
        for s in range(case["warmup"] + case["steps"]):
            for k in (list(steppers) if s % 2 == 0 else list(steppers)[::-1]):
                t = steppers[k][0](s)
                if s >= case["warmup"]: times[k].append(t)
    return [_row(case, k, times[k], steppers[k][1]) for k in steppers]


def small_zoo(folder: Path, kind: str = "formal-languages") -> str:
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    common = dict(n_runs=24, steps=300, checkpoints=(0, 50, 100, 200, 300), lr_steps=(0, 300), lr_values=(0.01, 0.003),
                  n_rollouts=8, runs_per_shard=6, preset="benchmark")
    cfg = (replace(FormalLanguageZooConfig(), eval_samples=100, **common) if kind == "formal-languages"
           else replace(SequentialMNISTZooConfig(), train_loss_images=200, **common))
    return str(build_zoo(cfg, folder / "zoo", workers=min(2, os.cpu_count() or 1), progress=False).root)


def check_out(p: argparse.ArgumentParser, a: argparse.Namespace):
    "--out must be new unless --overwrite."
    if a.out is not None and a.out.exists() and not a.overwrite: p.error(f"{a.out} exists; pass --overwrite to replace it")


def write_rows(out: Path | None, device: str, rows: list[dict]):
    "The rows as JSON in `out` (nothing without --out); a zoo folder is named by its manifest, not by its path on this machine."
    if out is None: return
    import torch
    from rnn_weightspace.zoo.reader import Zoo
    names = {}                                                                 # one manifest read per zoo folder
    def named(r):
        if not isinstance(r.get("zoo"), str) or not Path(r["zoo"]).is_dir(): return r
        if r["zoo"] not in names: m = Zoo(r["zoo"]).manifest; names[r["zoo"]] = f"{m['name']} ({m['kind']})"
        return {**r, "zoo": names[r["zoo"]]}
    rows = [named(r) for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"\nrows written to {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zoo", type=Path, default=None, help="zoo folder (default: build a small zoo of --zoo-kind)")
    p.add_argument("--zoo-kind", default="formal-languages", choices=["formal-languages", "sequential-mnist"])
    p.add_argument("--sizes", nargs="+", default=["paper", "small"])
    p.add_argument("--encoders", nargs="+", default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per row (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON to this file (default: print only)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (otherwise an existing file is an error)")
    p.add_argument("--no-released", action="store_true", help="leave out the released-style baseline rows")
    a = p.parse_args()
    check_out(p, a)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    from rnn_weightspace.encoders.base import ENCODERS, PAPER_ENCODERS
    tmp = tempfile.TemporaryDirectory()
    zoo = str(a.zoo) if a.zoo else small_zoo(Path(tmp.name), a.zoo_kind)
    cases = [dict(zoo=zoo, size=s, encoder=e, batch=a.batch, steps=a.steps, warmup=a.warmup, threads=a.threads, device=a.device,
                  released=a.device == "cpu" and not a.no_released and s == "paper" and e in PAPER_ENCODERS)   # the released-style step beside ours
             for s in a.sizes for e in dict.fromkeys([*(a.encoders or ENCODERS), "weight-blind"])]   # weight-blind once
    rows, ctx = [], mp.get_context("spawn")
    for c in cases:
        with ctx.Pool(1) as pool: got = pool.apply(measure, (c,))
        rows += got
        for r in got: print(f"  {r['size']:<6} {r['encoder']:<18} {r['impl']:<9} {r['total']:8.1f} ms/step", file=sys.stderr, flush=True)
    import torch
    from rnn_weightspace.zoo.reader import Zoo
    z = Zoo(zoo)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{platform.machine()} CPU, {a.threads} thread(s)"
    print(f"\nTraining step, batch {a.batch} RNN checkpoints x 1 rollout, zoo {z.manifest.get('name')} ({z.manifest.get('kind')}), "
          f"{dev}, torch {torch.__version__}; median of {a.steps} steps, ms\n")
    head = "| size | encoder | step of | " + " | ".join(PARTS) + " | step | steps/s | data share | ratio ours / released |"
    print(head); print("|---" * (head.count("|") - 1) + "|")
    released = {(r["size"], r["encoder"]): r["total"] for r in rows if r["impl"] == "released"}
    for r in rows:
        sps, base = 1000 / r["total"], released.get((r["size"], r["encoder"]))
        ratio = f"**{base / r['total']:.2f}**" if base and r["impl"] == "ours" else "—"
        print(f"| {r['size']} | {r['encoder']} | {r['impl']} | " + " | ".join(f"{r[p]:.1f}" for p in PARTS)
              + f" | {r['total']:.1f} | {sps:.2f} | {100 * r['data'] / r['total']:.1f}% | {ratio} |")
    write_rows(a.out, dev, rows)


if __name__ == "__main__":
    main()
