"""Do stacked runs train faster than the same runs one after the other?

R runs of one encoder (seeds 0..R-1) on a real zoo folder, trained for a few steps two ways in the same process,
alternating step by step so that machine noise hits both alike:

  one by one  each run's step as `train` takes it: its batch and augmentation, `emulation_loss`, backward,
              `clip_grad_norm_` per module, AdamW; the runs one after the other;
  stacked     the step of `rnn_weightspace.stacked.train_stacked`: the R batches stacked, the R losses by
              `vmap(functional_call)`, one backward, clipping per run, one AdamW over the stacked parameters.

Both include the data path. Reported: ms per run-step and run-steps per second of each, and the ratio
stacked / one by one in run-steps per second (> 1: the stack is faster); on CUDA the peak memory of one stacked step
(the runs' own modules, kept for the one-by-one steps, are resident too).

Usage:
  OMP_NUM_THREADS=1 python benchmarks/stacked_runs.py --zoo ZOO_DIR --sizes small --runs 1 4 8   # CPU, one thread
  python benchmarks/stacked_runs.py --zoo ZOO_DIR --device cuda --sizes paper small --runs 15     # on a GPU
  python benchmarks/stacked_runs.py                           # builds the 24-run zoo of train_step.py in a temp folder first
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENCODERS = ("layerwise-stats", "flat", "dws", "probe-static", "probe-interactive", "weight-blind")   # the paper's, except the
# parameter transformer, whose dropout keeps it out of stacks (`stacked.stack_problem`), and the weight-blind baseline


def step_alone(r, spec, device, step: int, autocast=nullcontext) -> float:
    "One training step of a run alone, as `train` takes it (its batch, `emulation_loss`, `clip_grad_norm_` per module, AdamW); its loss."
    from torch import nn
    from rnn_weightspace.emulation import emulation_loss
    with autocast(): loss = emulation_loss(r.pair.encoder, r.pair.emulator, r.batch(step, spec, device), r.pair.domain, r.config.divergence)
    value = loss.item()
    r.opt.zero_grad(set_to_none=True)
    loss.backward()
    for m in (r.pair.encoder, r.pair.emulator):
        if m is not None: nn.utils.clip_grad_norm_(m.parameters(), r.config.clip)
    r.opt.step()
    return value


def step_stacked(stack, rs, spec, device, step: int, autocast=nullcontext) -> list[float]:
    "One step of the runs `rs` as the stack `stack`, as `train_stacked` takes it; the runs' losses."
    from rnn_weightspace.stacked import _stacked_batch
    w, b = _stacked_batch([r.batch(step, spec, device) for r in rs])
    with autocast(): loss = stack.losses(w, b)
    values = loss.detach().cpu().tolist()
    stack.opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    stack.clip(rs[0].config.clip)
    stack.opt.step()
    return values


def _runs(z, configs, folder: Path, device):
    "The runs of `configs`, prepared in `folder` as `train_stacked` prepares them."
    from rnn_weightspace.stacked import _StackedRun
    from rnn_weightspace.training import _zoo_fingerprint
    fp = _zoo_fingerprint(z)
    return [_StackedRun(z, z, fp, c, folder / f"{c.seed}-{i}", device, False, False) for i, c in enumerate(configs)]


def measure(zoo: str, encoder: str, size: str, runs: int, device: str = "cpu", steps: int = 5, warmup: int = 1,
            batch: int | None = None, amp: bool = False, stacked_too: bool = True) -> dict:
    """Median ms per run-step one by one and stacked, for `runs` seeds of `encoder` at `size` on the zoo folder `zoo`; the
    runs' losses at the last step of each way (`stacked_too=False`: one by one only, e.g. for an encoder that cannot stack)."""
    import torch
    from rnn_weightspace.stacked import _Stack
    from rnn_weightspace.training import train_preset
    from rnn_weightspace.zoo.reader import Zoo

    dev = torch.device(device)
    z = Zoo(zoo)
    over = {"batch_size": batch} if batch else {}
    cfgs = [train_preset("paper" if size == "paper" else size, encoder=encoder, size=size, seed=s, amp=amp, **over) for s in range(runs)]
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
    losses = {}
    with tempfile.TemporaryDirectory() as tmp:
        rs = _runs(z, cfgs, Path(tmp), dev)
        stack = _Stack([r.pair for r in rs], [r.opt for r in rs], cfgs[0]) if stacked_too else None

        def one_by_one(step: int):
            losses["one by one"] = [step_alone(r, z.spec, dev, step, autocast) for r in rs]; sync()

        def stacked(step: int):
            losses["stacked"] = step_stacked(stack, rs, z.spec, dev, step, autocast); sync()

        times = {"one by one": [], "stacked": []}
        ways = (("one by one", one_by_one), ("stacked", stacked)) if stacked_too else (("one by one", one_by_one),)
        for step in range(warmup + steps):
            for name, fn in ways:
                t = time.perf_counter(); fn(step); dt = time.perf_counter() - t
                if step >= warmup: times[name].append(1000 * dt / runs)
        peak = None
        if dev.type == "cuda" and stacked_too:                                     # one more stacked step, its peak alone
            torch.cuda.reset_peak_memory_stats()
            stacked(warmup + steps)
            peak = torch.cuda.max_memory_allocated() / 2**20
    single = statistics.median(times["one by one"])
    stack_ms = statistics.median(times["stacked"]) if stacked_too else None
    return {"encoder": encoder, "size": size, "runs": runs, "batch": cfgs[0].batch_size, "amp": amp, "device": str(dev),
            "one_by_one_ms_per_run_step": single, "stacked_ms_per_run_step": stack_ms,
            "one_by_one_run_steps_per_s": 1000 / single, "stacked_run_steps_per_s": 1000 / stack_ms if stack_ms else None,
            "ratio": single / stack_ms if stack_ms else None, "peak_mb": peak, "losses": losses}


def identity(zoo: str, encoder: str, size: str = "tiny", device: str = "cpu", steps: int = 2) -> dict:
    """Run 1 of a stack of seeds 0-2 against the same run in a stack of its own, after `steps` steps on the device: bit for bit
    (`equal`) and the largest difference of a parameter; and against the run trained one by one as `train` does (fused LSTM kernels)."""
    import torch
    from rnn_weightspace.stacked import _Stack
    from rnn_weightspace.training import train_preset
    from rnn_weightspace.zoo.reader import Zoo
    dev, z = torch.device(device), Zoo(zoo)
    cfg = lambda s: train_preset(size, encoder=encoder, seed=s, batch_size=8)
    with tempfile.TemporaryDirectory() as tmp:
        slices = {}
        for tag, seeds in (("three", (0, 1, 2)), ("one", (1,))):
            rs = _runs(z, [cfg(s) for s in seeds], Path(tmp) / tag, dev)
            st = _Stack([r.pair for r in rs], [r.opt for r in rs], rs[0].config)
            for step in range(steps): step_stacked(st, rs, z.spec, dev, step)
            slices[tag] = {n: p[seeds.index(1)].detach() for n, p in st.params.items()}
        (r,) = _runs(z, [cfg(1)], Path(tmp) / "alone", dev)
        for step in range(steps): step_alone(r, z.spec, dev, step)
        alone = {n: p.detach() for n, p in r.pair.named_parameters()}
    a, b = slices["three"], slices["one"]
    return {"encoder": encoder, "device": str(dev), "steps": steps, "equal": all(torch.equal(a[n], b[n]) for n in a),
            "max_diff_stack_of_one": max(float((a[n] - b[n]).abs().max()) for n in a),
            "max_diff_train": max(float((b[n] - alone[n]).abs().max()) for n in b)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zoo", type=Path, default=None, help="zoo folder (default: build train_step.py's small zoo of --zoo-kind)")
    p.add_argument("--zoo-kind", default="formal-languages", choices=["formal-languages", "sequential-mnist"])
    p.add_argument("--sizes", nargs="+", default=["small"])
    p.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    p.add_argument("--runs", nargs="+", type=int, default=[1, 4, 8], help="stack sizes R")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (after --warmup)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=None, help="RNN checkpoints per step (default: the preset's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON to this file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = p.parse_args()
    sys.path.insert(0, str(HERE))
    from train_step import check_out, small_zoo, write_rows
    check_out(p, a)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    tmp = tempfile.TemporaryDirectory()
    if a.zoo is None: zoo = small_zoo(Path(tmp.name), a.zoo_kind)
    else: zoo = str(a.zoo)
    rows = []
    for size in a.sizes:
        for e in a.encoders:
            for R in a.runs:
                r = measure(zoo, e, size, R, a.device, a.steps, a.warmup, a.batch, a.amp)
                rows.append(r)
                print(f"  {size:<6} {e:<18} R={R:<3} one by one {r['one_by_one_ms_per_run_step']:7.1f}  stacked {r['stacked_ms_per_run_step']:7.1f} "
                      f"ms per run-step  ratio {r['ratio']:.2f}", file=sys.stderr, flush=True)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{platform.machine()} CPU, {a.threads} thread(s)"
    print(f"\nR runs (seeds) of one encoder, one by one and stacked, alternating step by step; {dev}, torch {torch.__version__}, "
          f"{'bf16 autocast' if a.amp else 'float32'}; median of {a.steps} steps\n")
    head = "| size | encoder | R | batch | one by one, ms/run-step | stacked, ms/run-step | run-steps/s one by one | run-steps/s stacked | ratio stacked / one by one |"
    print(head); print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        print(f"| {r['size']} | {r['encoder']} | {r['runs']} | {r['batch']} | {r['one_by_one_ms_per_run_step']:.1f} | {r['stacked_ms_per_run_step']:.1f} "
              f"| {r['one_by_one_run_steps_per_s']:.1f} | {r['stacked_run_steps_per_s']:.1f} | **{r['ratio']:.2f}** |")
    write_rows(a.out, dev, rows)


if __name__ == "__main__":
    main()
