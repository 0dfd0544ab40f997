"""What does each encoder cost: parameters, forward and forward+backward time, a full training step, peak memory?

For every encoder of the registry (and the weight-blind emulator, which has no encoder), at the paper's sizes and at
the CPU presets, on formal-language models (2x32 LSTM, 6 tokens, rollouts of 41 steps) and sequential-MNIST models
(2x32 LSTM, 16-pixel tiles, 50 steps), with a batch of 64 RNN checkpoints x 1 rollout:

  params      encoder parameters;
  enc fwd     encoder forward, no gradients (ms);
  enc f+b     encoder forward + backward of sum(z) (ms);
  step        a full training step: permutation augmentation where the encoder needs it, encoder + emulator forward,
              total-variation loss, backward, gradient clipping per module (0.1), AdamW step (ms);
  peak MB     peak resident memory of the process running the row, above its level after start-up.

Every row runs in a fresh process with one torch thread (--threads to change). The baseline is the authors' code,
measured on an idle 2-core machine of this kind (`shared/reference/baselines.md` and issue 4): their *forward only*
time of encoder + emulator + loss, FL, batch 64. In the same run we time the authors' emulator configuration alone
(nn.LSTM 256x2 over 64 x 41 steps) as a calibration of the machine: it bounds what any full step can cost.

Usage:
  python benchmarks/encoders.py                       # paper + small sizes, both zoo kinds (~10 min on 1 thread)
  python benchmarks/encoders.py --sizes paper --zoos formal-languages --threads 2
  python benchmarks/encoders.py --smoke               # tiny sizes, batch 4, a few seconds (CI check of the script)
  python benchmarks/encoders.py --device cuda         # on a GPU (adds peak GPU memory)
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

# The authors' forward-only times (encoder + emulator forward + loss), FL, batch 64, 2-core machine (issue 4), and
# their full training steps (`baselines.md`), in ms.
AUTHORS_FORWARD = {"layerwise-stats": 52, "flat": 28, "dws": 134, "param-transformer": 4700, "probe-static": 80, "probe-interactive": 86}
AUTHORS_STEP = {"layerwise-stats": 164, "flat": 129, "dws": 467, "probe-static": 313, "probe-interactive": 317}
ZOOS = {"formal-languages": dict(spec=(6, 32, 2, 6), T=41), "sequential-mnist": dict(spec=(16, 32, 2, 10), T=50)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn, repeats: int, sync) -> float:
    "Median wall time of `fn` in ms, after one warm-up call."
    fn(); sync()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); sync(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def measure(case: dict) -> dict:
    "One row, in a fresh process."
    import torch
    torch.set_num_threads(case["threads"])
    from rnn_weightspace.emulation import Emulator, emulation_loss
    from rnn_weightspace.encoders.base import InputDomain, make_encoder
    from rnn_weightspace.lstm import LSTMSpec, LSTMWeights
    from rnn_weightspace.symmetry import augment

    dev = torch.device(case["device"])
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    rss0 = _rss_mb()
    z = ZOOS[case["zoo"]]
    spec, T, B = LSTMSpec(*z["spec"]), z["T"], case["batch"]
    domain = InputDomain.tokens(6) if case["zoo"] == "formal-languages" else InputDomain.continuous(16, -0.4242, 2.8215)
    g = torch.Generator().manual_seed(0)
    w = LSTMWeights.init(spec, (B,), generator=g).map(lambda t: t + 0.3 * torch.randn(t.shape, generator=g)).to(dev)
    if domain.kind == "tokens": batch = {"tokens": torch.randint(0, 6, (B, 1, T + 1), generator=g)}
    else: batch = {"inputs": torch.rand(B, 1, T, 16, generator=g) * 3.2 - 0.42}
    batch["log_probs"] = torch.randn(B, 1, T, spec.output_size, generator=g).log_softmax(-1)
    batch = {k: v.to(dev) for k, v in batch.items()}
    batch["weights"] = w
    torch.manual_seed(0)
    if case["encoder"] == "emulator-only":  # calibration: the authors' emulator configuration, plain nn.LSTM forward
        lstm = torch.nn.LSTM(256, 256, 2, batch_first=True).to(dev)
        x = torch.randn(B, T, 256, device=dev)
        with torch.no_grad(): fwd = _time(lambda: lstm(x), case["repeats"], sync)
        fb = _time(lambda: lstm(x)[0].sum().backward(), case["repeats"], sync)
        return {**case, "params": sum(p.numel() for p in lstm.parameters()), "enc_fwd": fwd, "enc_fb": fb, "step": None,
                "peak_mb": _rss_mb() - rss0, "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None}
    blind = case["encoder"] == "weight-blind"
    enc = None if blind else make_encoder(case["encoder"], spec, size=case["size"], domain=domain).to(dev)
    emu = Emulator.from_size(case["size"], domain.size, spec.output_size, embedding_size=None if blind else 16).to(dev)
    modules = [m for m in (enc, emu) if m is not None]
    opt = torch.optim.AdamW([p for m in modules for p in m.parameters()], lr=1e-4, weight_decay=0.01)
    aug = enc is not None and enc.needs_augmentation

    def step():
        opt.zero_grad(set_to_none=True)
        b = dict(batch, weights=augment(w) if aug else w)
        emulation_loss(enc, emu, b, domain, "tv").backward()
        for m in modules: torch.nn.utils.clip_grad_norm_(m.parameters(), 0.1)
        opt.step()

    out = {**case, "params": enc.n_params if enc is not None else 0, "enc_fwd": None, "enc_fb": None}
    if enc is not None:
        with torch.no_grad(): out["enc_fwd"] = _time(lambda: enc(w), case["repeats"], sync)
        out["enc_fb"] = _time(lambda: enc(w).sum().backward(), case["repeats"], sync)
    out["step"] = _time(step, case["repeats"], sync)
    out["peak_mb"] = _rss_mb() - rss0
    out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return out


def fmt(x, nd=1):
    return "—" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["paper", "small"])
    p.add_argument("--zoos", nargs="+", default=list(ZOOS), choices=list(ZOOS))
    p.add_argument("--encoders", nargs="+", default=None, help="registry names (default: all six)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, batch 4, 1 repeat: checks that the script runs")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the rows (default: benchmarks/results/encoders_<device>_<threads>t.json)")
    a = p.parse_args()
    if a.smoke: a.sizes, a.batch, a.repeats = ["tiny"], 4, 1
    from rnn_weightspace.encoders.base import ENCODERS
    encoders = a.encoders or list(ENCODERS)
    cases = [dict(zoo=zoo, size=size, encoder=e, batch=a.batch, threads=a.threads, repeats=a.repeats, device=a.device)
             for zoo in a.zoos for size in a.sizes for e in [*encoders, "weight-blind"]]
    cases.insert(0, dict(zoo=a.zoos[0], size="paper", encoder="emulator-only", batch=a.batch, threads=a.threads,
                         repeats=a.repeats, device=a.device))
    rows = []
    ctx = mp.get_context("spawn")
    env_threads = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = env_threads
    for c in cases:
        with ctx.Pool(1) as pool: r = pool.apply(measure, (c,))
        rows.append(r)
        print(f"  {r['zoo']:<17} {r['size']:<6} {r['encoder']:<18} step {fmt(r['step'])} ms", file=sys.stderr, flush=True)

    import torch
    dev_name = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{platform.processor() or platform.machine()} CPU, {a.threads} thread(s)"
    print(f"\nEncoder costs, batch {a.batch} RNN checkpoints x 1 rollout, {dev_name}, torch {torch.__version__}\n")
    head = "| zoo | size | encoder | params | enc fwd (ms) | enc f+b (ms) | full step (ms) | authors' fwd only (ms) | step / authors' fwd | step / authors' step | peak MB |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        e = r["encoder"]
        base_f = AUTHORS_FORWARD.get(e) if r["zoo"] == "formal-languages" and r["size"] == "paper" and a.batch == 64 else None
        base_s = AUTHORS_STEP.get(e) if base_f else None
        ratio_f = r["step"] / base_f if base_f and r["step"] else None
        ratio_s = r["step"] / base_s if base_s and r["step"] else None
        mem = r["gpu_peak_mb"] if r["gpu_peak_mb"] is not None else r["peak_mb"]
        name = "(authors' emulator config, nn.LSTM alone)" if e == "emulator-only" else e
        print(f"| {r['zoo']} | {r['size']} | {name} | {fmt(r['params'])} | {fmt(r['enc_fwd'])} | {fmt(r['enc_fb'])} | "
              f"{fmt(r['step'])} | {fmt(base_f)} | {fmt(ratio_f, 2)} | {fmt(ratio_s, 2)} | {fmt(mem, 0)} |")
    out = a.out or Path(__file__).parent / "results" / f"encoders_{a.device.split(':')[0]}_{a.threads}t{'_smoke' if a.smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": dev_name, "torch": torch.__version__, "batch": a.batch, "rows": rows}, indent=1))
    print(f"\nrows written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
