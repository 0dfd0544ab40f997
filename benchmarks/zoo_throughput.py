"""How fast do we build formal-language zoos, compared with the authors' approach, measured in one run?

Rows (all on this machine, one torch thread per process):
  (a) baseline: a plain per-model loop as in the authors' generator: one `nn.LSTM` + `nn.Linear` + AdamW per run,
      runs one after another in one process, checkpoint evaluation by `torch.multinomial` sampling (1,000 strings for
      the accuracy and 100 more for the stored rollouts, as the official code does);
  (b) our CPU backend (`build_zoo(backend="cpu")`) with 1 and with 2 worker processes: whole builds, shards written;
  (c) our batched backend on the CPU (`build_zoo(backend="batched", device="cpu")`);
  (d) with --device cuda: our batched backend at N runs on the GPU against the per-model loop on the same GPU.
Each row reports models/min, the mean time per training step of one model, achieved GFLOP/s (training FLOPs of
forward+backward ~ 3x forward, plus evaluation sampling FLOPs) and ratios to (a). A one-thread 1024^2 matrix product
is timed in the same run as the per-core roofline.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/zoo_throughput.py --preset tiny
  OMP_NUM_THREADS=1 python benchmarks/zoo_throughput.py --preset small --sample-runs 24   # (a), (b1), (c) on 24 runs
  OMP_NUM_THREADS=1 python benchmarks/zoo_throughput.py --family sequential-mnist --preset tiny
  python benchmarks/zoo_throughput.py --preset paper --device cuda --gpu-runs 1000 --gpu-steps 200
"""
import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnn_weightspace.core import make_generator, set_threads
from rnn_weightspace.zoo.train import assign_tasks, build_zoo, get_preset


def _per_token(cfg) -> tuple[float, int]:
    "Forward FLOPs per sequence position of one model, and the sequence length."
    spec = cfg.spec
    T = 50 if cfg.kind == "sequential-mnist" else cfg.family.seq_len - 1
    H = spec.hidden_size
    return sum(2 * 4 * H * (spec.layer_input_size(l) + H) for l in range(spec.num_layers)) + 2 * H * spec.output_size, T


def step_flops(cfg) -> float:
    "FLOPs of one training step of one model: forward x 3 (backward ~ 2x forward)."
    per_token, T = _per_token(cfg)
    return 3 * per_token * cfg.batch_size * T


def eval_flops(cfg) -> float:
    "FLOPs of one run's checkpoint evaluations (sampled strings, or held-out + train-loss + rollout digits)."
    per_token, T = _per_token(cfg)
    n = cfg.eval_samples if cfg.kind == "formal-languages" else 2000 + cfg.train_loss_images + cfg.n_rollouts
    return per_token * n * T * len(cfg.checkpoints)


def matmul_gflops(n=1024, reps=20, device="cpu") -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3): a @ b
    if device != "cpu": torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps): a @ b
    if device != "cpu": torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def baseline_run(cfg, run, device="cpu"):
    "The authors' approach, written plainly: one model, AdamW, fresh batches, multinomial sampling at checkpoints."
    fam = cfg.family
    task = fam.tasks[assign_tasks(cfg.n_runs, fam, cfg.seed)[run]]
    g = make_generator(cfg.seed, "baseline", run)
    lstm = nn.LSTM(fam.vocab_size, cfg.hidden_size, cfg.num_layers, batch_first=True).to(device)
    lin = nn.Linear(cfg.hidden_size, fam.vocab_size).to(device)
    params = [*lstm.parameters(), *lin.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr_at(0), weight_decay=cfg.weight_decay)
    keep = set(cfg.checkpoints)
    for step in range(cfg.steps + 1):
        if step in keep:
            with torch.no_grad():
                for n in (cfg.eval_samples, cfg.n_rollouts):        # 1,000 for the accuracy, 100 stored rollouts
                    tok = torch.full((n,), fam.bos, device=device)
                    seq, state = [tok], None
                    for _ in range(fam.seq_len - 1):
                        out, state = lstm(F.one_hot(tok, fam.vocab_size).float()[:, None], state)
                        probs = torch.softmax(lin(out[:, 0]), -1)
                        tok = torch.multinomial(probs, 1)[:, 0]
                        seq.append(tok)
                    fam.official_accept(torch.stack(seq, -1), task.to(device)).float().mean().item()
        if step == cfg.steps: break
        tokens = fam.sample(task, cfg.batch_size, generator=g).to(device)
        x, y = fam.lm_batch(tokens)
        out, _ = lstm(x)
        loss = F.cross_entropy(lin(out).reshape(-1, fam.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for pg in opt.param_groups: pg["lr"] = cfg.lr_at(step)
        opt.step()
    if device != "cpu": torch.cuda.synchronize()


def eval_seconds(cfg) -> float:
    "Time of one run's checkpoint evaluations in our CPU backend: vectorised sampling of 1,000 strings + both checks."
    from rnn_weightspace.lstm import LSTMWeights
    from rnn_weightspace.zoo.train import _eval_uniforms, sample_autoregressive
    fam, model = cfg.family, LSTMWeights.init(cfg.spec, generator=make_generator(0)).to_module()
    task = fam.tasks[:1]
    def once():
        for step in cfg.checkpoints:
            tokens, _ = sample_autoregressive(model.step, _eval_uniforms(cfg, [0], step)[0], fam, cfg.n_rollouts)
            fam.is_member(tokens, task).float().mean(); fam.official_accept(tokens, task).float().mean()
    once()
    return min(timed(once) for _ in range(3))


def baseline_run_mnist(cfg, run, device="cpu"):
    "The authors' sMNIST approach, written plainly: one model, PIL rotation of every sample as it is loaded, AdamW."
    from PIL import Image
    from rnn_weightspace.tasks.sequential_mnist import MNIST_MEAN, MNIST_STD, load_mnist, to_tiles
    from rnn_weightspace.zoo.sequential_mnist import run_tasks
    mnist = load_mnist()
    (angle,), (wd,) = run_tasks(cfg, [run])
    def load(i):  # what torchvision's RandomRotation([a, a]) + ToTensor + Normalize + tiling do, one PIL image at a time
        img = Image.fromarray(mnist.images[i].numpy()).rotate(float(angle), resample=Image.NEAREST, fillcolor=0)
        x = (torch.from_numpy(np.array(img)).float() / 255 - MNIST_MEAN) / MNIST_STD
        return torch.cat([torch.zeros(1, 16), to_tiles(x)])
    lstm = nn.LSTM(16, cfg.hidden_size, cfg.num_layers, batch_first=True).to(device)
    lin = nn.Linear(cfg.hidden_size, 10).to(device)
    opt = torch.optim.AdamW([*lstm.parameters(), *lin.parameters()], lr=cfg.lr_at(0), weight_decay=float(wd))
    g = make_generator(cfg.seed, "baseline", run)
    tr = mnist.train_index
    def evaluate(index):
        with torch.no_grad():
            for i in range(0, len(index), 1000):
                x = torch.stack([load(int(j)) for j in index[i:i + 1000]]).to(device)
                lin(lstm(x)[0])
    for step in range(cfg.steps + 1):
        if step in set(cfg.checkpoints):
            evaluate(mnist.eval_index); evaluate(tr[:cfg.train_loss_images]); evaluate(tr[:cfg.n_rollouts])
        if step == cfg.steps: break
        idx = tr[torch.randint(len(tr), (cfg.batch_size,), generator=g)]
        x = torch.stack([load(int(i)) for i in idx]).to(device)
        y = mnist.labels[idx].to(device)
        loss = F.cross_entropy(lin(lstm(x)[0]).reshape(-1, 10), y.repeat_interleave(50))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for pg in opt.param_groups: pg["lr"] = cfg.lr_at(step)
        opt.step()


def row(name, n_models, secs, cfg, n_parallel=1):
    train_steps = n_models * cfg.steps
    flops = n_models * (cfg.steps * step_flops(cfg) + eval_flops(cfg))
    return {"approach": name, "models": n_models, "seconds": secs, "models_per_min": 60 * n_models / secs,
            "ms_per_step": 1e3 * secs / train_steps * n_parallel, "gflops": flops / secs / 1e9}


def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="formal-languages", choices=["formal-languages", "sequential-mnist"])
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"])
    p.add_argument("--sample-runs", type=int, default=None, help="runs for (a), (b1) and (c) (default: the whole preset)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gpu-runs", type=int, default=1000)
    p.add_argument("--gpu-steps", type=int, default=None, help="shorten runs on the GPU (steps; checkpoints kept within)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args()
    set_threads(1)
    if args.family == "sequential-mnist":
        from rnn_weightspace.zoo.sequential_mnist import get_preset as mnist_preset
        cfg, base = mnist_preset(args.preset), baseline_run_mnist
    else: cfg, base = get_preset(args.preset), baseline_run
    n_sample = args.sample_runs or cfg.n_runs
    sample_cfg = replace(cfg, n_runs=n_sample, runs_per_shard=min(cfg.runs_per_shard, n_sample))
    rows = []
    print(f"{args.family} preset {args.preset}: {cfg.n_runs} runs x {cfg.steps} steps, {len(cfg.checkpoints)} checkpoints; "
          f"step = {step_flops(cfg) / 1e6:.1f} MFLOP; torch {torch.__version__}, {os.cpu_count()} cores", flush=True)
    roof = matmul_gflops()
    print(f"1-thread 1024^2 matmul: {roof:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        secs = timed(lambda: [base(sample_cfg, r) for r in range(n_sample)])
        rows.append(row(f"(a) per-model nn.LSTM loop, 1 process ({n_sample} runs)", n_sample, secs, cfg)); print(rows[-1], flush=True)
        secs = timed(lambda: build_zoo(sample_cfg, tmp / "b1", workers=1, progress=False))
        rows.append(row(f"(b) ours, CPU backend, 1 worker ({n_sample} runs)", n_sample, secs, cfg)); print(rows[-1], flush=True)
        secs = timed(lambda: build_zoo(cfg, tmp / "b2", workers=2, progress=False))
        rows.append(row(f"(b) ours, CPU backend, 2 workers (whole build, {cfg.n_runs} runs)", cfg.n_runs, secs, cfg, n_parallel=2)); print(rows[-1], flush=True)
        n_c = min(n_sample, 24)
        c_cfg = replace(cfg, n_runs=n_c, runs_per_shard=min(cfg.runs_per_shard, n_c))
        secs = timed(lambda: build_zoo(c_cfg, tmp / "c", backend="batched", device="cpu", batch_runs=n_c, progress=False))
        rows.append(row(f"(c) ours, batched backend on CPU ({n_c} runs stacked)", n_c, secs, cfg)); print(rows[-1], flush=True)
        if args.device != "cpu":
            gcfg = cfg if args.gpu_steps is None else replace(cfg, steps=args.gpu_steps, checkpoints=tuple(c for c in cfg.checkpoints if c <= args.gpu_steps),
                                                           lr_steps=(0, args.gpu_steps // 2, args.gpu_steps))
            gcfg = replace(gcfg, n_runs=args.gpu_runs, runs_per_shard=min(gcfg.runs_per_shard, args.gpu_runs))
            n_loop = 4
            secs = timed(lambda: [base(replace(gcfg, n_runs=n_loop), r, args.device) for r in range(n_loop)])
            rows.append(row(f"(d) per-model nn.LSTM loop on {torch.cuda.get_device_name()} ({n_loop} runs)", n_loop, secs, gcfg)); print(rows[-1], flush=True)
            secs = timed(lambda: build_zoo(gcfg, tmp / "d", backend="batched", device=args.device, batch_runs=args.gpu_runs, progress=False))
            rows.append(row(f"(d) ours, batched on {torch.cuda.get_device_name()} ({args.gpu_runs} runs)", args.gpu_runs, secs, gcfg)); print(rows[-1], flush=True)
    if args.family == "formal-languages":
        eval_s = eval_seconds(cfg)
        run_s = rows[1]["seconds"] / n_sample
        print(f"\ncheckpoint evaluation ({len(cfg.checkpoints)} x {cfg.eval_samples} sampled strings, both checks): "
              f"{eval_s:.2f} s per run = {100 * eval_s / run_s:.1f}% of a {run_s:.2f} s run (CPU backend, 1 worker)")
    base = rows[0]["models_per_min"]
    print(f"\n| approach | models | wall s | models/min | ms/step/model | GFLOP/s | vs (a) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['approach']} | {r['models']} | {r['seconds']:.1f} | {r['models_per_min']:.1f} | {r['ms_per_step']:.2f} | {r['gflops']:.1f} | {r['models_per_min'] / base:.2f}x |")
    print(f"| 1-thread 1024² matmul (roofline) | | | | | {roof:.1f} | |")
    if args.json: args.json.write_text(json.dumps({"preset": args.preset, "matmul_gflops": roof, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
