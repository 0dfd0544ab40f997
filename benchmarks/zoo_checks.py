"""What do the zoo's integrity checks cost, against reading without them, measured in one run?

Rows (one torch thread; every "first read" in a fresh Python process, so that nothing is cached in it):
  first read, weights    one row of one weights shard: `Zoo(path).weights[r]` with the checksum (the default: the whole
                         shard is hashed once per process) against `Zoo(path, checksums=False)`;
  first read, rollouts   the same for one row of one rollouts shard;
  NaN/Inf check          the finite check every weights read makes, on a batch of 64 models, against the read alone
                         (in one process, after the shard was opened);
  verify, whole zoo      `Zoo(path, verify=True)` (every checksum, every weight; what `rnnws zoo info` does by
                         default) against `Zoo(path)`, each in a fresh process.
The operating system's file cache is warm for both sides (the files were read before); on a cold disk the checked first
read also has to read the whole shard from the disk.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/zoo_checks.py --zoo ZOO_DIR
  OMP_NUM_THREADS=1 python benchmarks/zoo_checks.py      # builds a small formal-language zoo in a temp folder first
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from rnn_weightspace.zoo.reader import Zoo
path, what, checksums, row = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
if what == "verify":
    t = time.perf_counter(); Zoo(path, verify=checksums); print(json.dumps(time.perf_counter() - t)); sys.exit()
zoo = Zoo(path, checksums=checksums)
t = time.perf_counter()
getattr(zoo, what)[row]
print(json.dumps(time.perf_counter() - t))
"""


def child(zoo: str, what: str, checked: bool, row: int = 0) -> float:
    "Seconds of one measurement in a fresh process."
    r = subprocess.run([sys.executable, "-c", CHILD, zoo, what, "1" if checked else "0", str(row)], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode: raise SystemExit(r.stderr)
    return json.loads(r.stdout)


def median(f, repeats: int) -> float: return statistics.median(f() for _ in range(repeats))


def finite_check(zoo_dir: str, repeats: int) -> tuple[float, float]:
    "Median seconds of reading 64 weights rows, and of the NaN/Inf check on them (in this process)."
    import numpy as np
    from rnn_weightspace.zoo import reader as zr
    zoo = zr.Zoo(zoo_dir)
    rows = np.arange(min(64, len(zoo)))
    reader = zoo._shards("weights")
    reader.read(rows)                                                    # open (and hash) the shards first
    read = median(lambda: (t := time.perf_counter(), reader.read(rows), time.perf_counter() - t)[-1], repeats)
    data = reader.read(rows)
    check = median(lambda: (t := time.perf_counter(), zr._first_nonfinite(data), time.perf_counter() - t)[-1], repeats)
    return read, check


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zoo", type=Path, default=None, help="zoo folder (default: build a small formal-language zoo)")
    p.add_argument("--repeats", type=int, default=5, help="measurements per row (the median is reported)")
    args = p.parse_args()
    if args.zoo is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from train_step import small_zoo
        args.zoo = Path(small_zoo(Path(tempfile.mkdtemp())))
    zoo = str(args.zoo)
    m = json.loads((args.zoo / "manifest.json").read_text())
    files = m["shards"][0]["files"]
    print(f"zoo {zoo}: {m['n_runs']} runs x {len(m['checkpoint_steps'])} checkpoints, {len(m['shards'])} shards; "
          f"shard 0: weights {files['weights']['bytes'] / 1e6:.1f} MB, rollouts {files['rollouts']['bytes'] / 1e6:.1f} MB; "
          f"whole zoo {sum(f['bytes'] for sh in m['shards'] for f in sh['files'].values()) / 1e6:.0f} MB")
    child(zoo, "verify", True)                                           # warm the file cache
    rows = []
    for what in ("weights", "rollouts"):
        on, off = (median(lambda c=c: child(zoo, what, c), args.repeats) for c in (True, False))
        rows.append((f"first read, {what}", on, off))
    read, check = finite_check(zoo, 50)
    rows.append(("NaN/Inf check, 64 models", read + check, read))
    on, off = (median(lambda c=c: child(zoo, "verify", c), args.repeats) for c in (True, False))
    rows.append(("verify, whole zoo", on, off))
    print(f"\n{'':<26} {'checked (ms)':>13} {'unchecked (ms)':>15} {'ratio':>7}")
    for name, on, off in rows: print(f"{name:<26} {on * 1e3:>13.2f} {off * 1e3:>15.2f} {on / off:>7.1f}")


if __name__ == "__main__": main()
