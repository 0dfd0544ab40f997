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
(--threads to change). The baseline column is the authors' code measured on an idle 2-core machine of this kind
(`shared/reference/baselines.md`): their full training steps per second at the paper size on formal languages.

Usage:
  python benchmarks/train_step.py --zoo ZOO_DIR                 # paper and small sizes on an existing zoo
  python benchmarks/train_step.py                               # builds a small formal-language zoo in a temp folder first
  python benchmarks/train_step.py --sizes tiny --steps 5        # quick check
  python benchmarks/train_step.py --zoo ZOO_DIR --device cuda   # on a GPU
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

AUTHORS_STEPS_PER_S = {"layerwise-stats": 6.1, "flat": 7.75, "dws": 2.1, "probe-static": 3.2, "probe-interactive": 3.15}
PARTS = ("data", "augment", "encoder fwd", "emulator fwd", "backward", "optimizer")


def measure(case: dict) -> dict:
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
    times = {p: [] for p in PARTS}

    def step(s: int, record: bool):
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
        if record:
            for p, a, c in zip(PARTS, t[:-1], t[1:]): times[p].append((c - a) * 1000)

    for s in range(case["warmup"]): step(s, False)
    for s in range(case["warmup"], case["warmup"] + case["steps"]): step(s, True)
    med = {p: statistics.median(v) for p, v in times.items()}
    total = statistics.median([sum(v[i] for v in times.values()) for i in range(case["steps"])])
    return {**case, **med, "total": total, "params": enc.n_params if enc is not None else 0}


def small_zoo(folder: Path, kind: str = "formal-languages") -> str:
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    common = dict(n_runs=24, steps=300, checkpoints=(0, 50, 100, 200, 300), lr_steps=(0, 300), lr_values=(0.01, 0.003),
                  n_rollouts=8, runs_per_shard=6, preset="benchmark")
    cfg = (replace(FormalLanguageZooConfig(), eval_samples=100, **common) if kind == "formal-languages"
           else replace(SequentialMNISTZooConfig(), train_loss_images=200, **common))
    return str(build_zoo(cfg, folder / "zoo", workers=min(2, os.cpu_count() or 1), progress=False).root)


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
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    from rnn_weightspace.encoders.base import ENCODERS
    tmp = tempfile.TemporaryDirectory()
    zoo = str(a.zoo) if a.zoo else small_zoo(Path(tmp.name), a.zoo_kind)
    cases = [dict(zoo=zoo, size=s, encoder=e, batch=a.batch, steps=a.steps, warmup=a.warmup, threads=a.threads, device=a.device)
             for s in a.sizes for e in [*(a.encoders or ENCODERS), "weight-blind"]]
    rows, ctx = [], mp.get_context("spawn")
    for c in cases:
        with ctx.Pool(1) as pool: r = pool.apply(measure, (c,))
        rows.append(r)
        print(f"  {r['size']:<6} {r['encoder']:<18} {r['total']:8.1f} ms/step", file=sys.stderr, flush=True)
    import torch
    from rnn_weightspace.zoo.reader import Zoo
    z = Zoo(zoo)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{platform.machine()} CPU, {a.threads} thread(s)"
    print(f"\nTraining step, batch {a.batch} RNN checkpoints x 1 rollout, zoo {z.manifest.get('name')} ({z.manifest.get('kind')}), "
          f"{dev}, torch {torch.__version__}; median of {a.steps} steps, ms\n")
    head = "| size | encoder | " + " | ".join(PARTS) + " | step | steps/s | data share | authors' steps/s | ratio |"
    print(head); print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        base = AUTHORS_STEPS_PER_S.get(r["encoder"]) if r["size"] == "paper" and a.batch == 64 and z.manifest.get("kind") == "formal-languages" else None
        sps = 1000 / r["total"]
        print(f"| {r['size']} | {r['encoder']} | " + " | ".join(f"{r[p]:.1f}" for p in PARTS)
              + f" | {r['total']:.1f} | {sps:.2f} | {100 * r['data'] / r['total']:.1f}% | {base or '—'} | {f'{sps / base:.2f}' if base else '—'} |")
    out = a.out or Path(__file__).parent / "results" / f"train_step_{a.device.split(':')[0]}_{a.threads}t.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": dev, "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"\nrows written to {out}")


if __name__ == "__main__":
    main()
