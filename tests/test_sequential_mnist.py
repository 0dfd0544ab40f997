"""The sequential-MNIST inputs against the authors' pipeline: PIL rotation (what torchvision's RandomRotation does to a
PIL image), tiling, the shipped digits; and the paper's digits: LeCun's IDX files of the 60,000 training images (written
here from the shipped digits), their checks, the released train/eval split, and the `--source`/`--mnist-dir` options."""
import contextlib
import gzip
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_weightspace.cli import main
from rnn_weightspace.core import RNNWSError
from rnn_weightspace.tasks.sequential_mnist import (MNIST_MEAN, MNIST_STD, MNIST_TRAIN_FILES, from_tiles, load_mnist, read_idx,
                                                   read_mnist_train, released_split, rotate_images, tile_sequences, to_tiles)
from rnn_weightspace.zoo.sequential_mnist import get_preset

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.mark.parametrize("angle", [0, 17, 45, 90, 133.3, 200, 301, 359.9])
def test_rotation_matches_pil_nearest(mnist, angle):
    x = mnist.images[:200]
    ours = rotate_images(x, angle).to(torch.uint8).numpy()
    ref = np.stack([np.array(PIL.fromarray(img).rotate(angle, resample=PIL.NEAREST, fillcolor=0)) for img in x.numpy()])
    assert (ours == ref).mean() > 0.998  # identical except rare nearest-neighbour ties at exact half-pixel positions


def test_tile_sequence_is_the_official_layout(mnist):
    img = mnist.images[7]
    seq = tile_sequences(img, 0.0)
    assert seq.shape == (50, 16) and torch.equal(seq[0], torch.zeros(16))
    norm = (img.float() / 255 - MNIST_MEAN) / MNIST_STD
    for t in range(49):  # tile t covers rows 4*(t//7).., columns 4*(t%7).., flattened row-major
        r, c = divmod(t, 7)
        torch.testing.assert_close(seq[1 + t], norm[4 * r:4 * r + 4, 4 * c:4 * c + 4].flatten())
    assert torch.equal(from_tiles(to_tiles(mnist.images)), mnist.images)


def test_shipped_digits(mnist):
    assert mnist.images.shape == (10_000, 28, 28) and mnist.images.dtype == torch.uint8
    assert torch.bincount(mnist.labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert abs(mnist.images.float().mean().item() / 255 - MNIST_MEAN) < 0.01
    assert abs((mnist.images.float() / 255).std().item() - MNIST_STD) < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(mnist):
    angles = torch.rand(64) * 360
    cpu = tile_sequences(mnist.images[:64], angles)
    gpu = tile_sequences(mnist.images[:64].cuda(), angles.cuda())
    assert (gpu.cpu() == cpu).float().mean() > 0.998


# --- the paper's digits: the 60,000 MNIST training images from LeCun's IDX files, and the released split ------------
HASH_KEY_1, HASH_KEY_2 = 0x58a849af6cbf585a, 0x5ca118cb4d828a5e  # the two keys of the released utilities.hash64


def released_rule(i: int) -> bool:
    "The released code's test, in plain Python: hash64(i) = i ^ K1 ^ K2; train iff hash64(i) % 10 < 8."
    return (i ^ HASH_KEY_1 ^ HASH_KEY_2) % 10 < 8


def write_idx(path, a: np.ndarray, gz: bool = False):
    "LeCun's IDX format, written independently of the reader: 0x0000, type 0x08 (ubyte), ndim; big-endian sizes; bytes."
    data = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + np.ascontiguousarray(a, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)


def write_mnist(folder, shipped, gz: bool, copies: int = 6):
    "A folder with the two training files holding `copies` copies of the shipped digits (60,000 for 6): the stand-in data."
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / (MNIST_TRAIN_FILES[0] + ext), np.tile(shipped.images.numpy(), (copies, 1, 1)), gz)
    write_idx(folder / (MNIST_TRAIN_FILES[1] + ext), np.tile(shipped.labels.numpy(), copies), gz)
    return folder


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory, mnist):
    return write_mnist(tmp_path_factory.mktemp("mnist") / "plain", mnist, gz=False)


def test_released_split_60k_from_the_rule():
    n_train = sum(released_rule(i) for i in range(60_000))
    assert (n_train, 60_000 - n_train) == (47_998, 12_002)
    tr, ev = released_split()
    assert (len(tr), len(ev)) == (47_998, 12_002)
    assert torch.equal(torch.cat([tr, ev]).sort().values, torch.arange(60_000))


def test_released_split_10k_membership():
    rule = [released_rule(i) for i in range(10_000)]
    tr, ev = released_split(10_000)
    assert (sum(rule), len(rule) - sum(rule)) == (len(tr), len(ev)) == (8000, 2000)
    assert tr.tolist() == [i for i in range(10_000) if rule[i]] and ev.tolist() == [i for i in range(10_000) if not rule[i]]
    assert torch.equal(released_split()[1][:len(ev)], ev)                       # a prefix of the 60k split


@pytest.mark.parametrize("gz", [False, True])
def test_reader_returns_the_digits(tmp_path, monkeypatch, mnist, gz):
    write_mnist(tmp_path, mnist, gz)
    monkeypatch.setenv("RNNWS_MNIST_DIR", str(tmp_path))
    images, labels = read_mnist_train()
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    for k in range(6):
        assert torch.equal(images[k * 10_000:(k + 1) * 10_000], mnist.images) and torch.equal(labels[k * 10_000:(k + 1) * 10_000], mnist.labels)
    full = load_mnist("mnist")
    assert full.source == "mnist" and torch.equal(full.images, images)
    assert (len(full.train_index), len(full.eval_index)) == (47_998, 12_002)
    assert all(released_rule(i) for i in full.train_index[::97].tolist()) and not any(released_rule(i) for i in full.eval_index[::23].tolist())
    info = full.info()
    assert (info["name"], info["n_digits"], info["n_train"], info["n_eval"]) == ("mnist", 60_000, 47_998, 12_002)
    assert "0x04095164213dd204" in info["split"] and len(info["sha256"]) == 64


def test_torchvision_layout_and_root_argument(tmp_path, mnist):
    write_mnist(tmp_path / "MNIST" / "raw", mnist, gz=True)                       # where torchvision's MNIST(root) keeps them
    assert torch.equal(load_mnist("mnist", root=tmp_path).labels[:10_000], mnist.labels)
    assert load_mnist("torchvision", root=tmp_path).source == "mnist"            # the old name is an alias


def _bad_files(d, mnist):
    "name -> (file to damage, how, expected message part); every case starts from a good plain folder."
    img, lab = d / MNIST_TRAIN_FILES[0], d / MNIST_TRAIN_FILES[1]
    cut = lambda f, n: f.write_bytes(f.read_bytes()[:n])                                    # noqa: E731
    return {
        "truncated images": (img, lambda: cut(img, 16 + 784 * 60_000 - 5), "truncated"),
        "truncated labels": (lab, lambda: cut(lab, 100), "truncated"),
        "header cut": (img, lambda: cut(img, 10), "shorter than its 16-byte IDX header"),
        "too long": (lab, lambda: lab.write_bytes(lab.read_bytes() + b"\0"), "too long"),
        "wrong magic": (img, lambda: img.write_bytes(b"\0\0\x08\x02" + img.read_bytes()[4:]), "magic number 0x00000802, expected 0x00000803"),
        "labels as images": (img, lambda: img.write_bytes(lab.read_bytes()), "magic number 0x00000801"),
        "html, not gzip": (lab, lambda: lab.write_bytes(b"<html>404</html>"), "magic number"),
        "cut gzip": (img, lambda: img.write_bytes(gzip.compress(img.read_bytes(), 1)[:5000]), "cannot read it"),
        "test set": (img, lambda: write_idx(img, mnist.images.numpy()), "holds 10,000 images; the MNIST training set has 60,000"),
        "label count": (lab, lambda: write_idx(lab, mnist.labels.numpy()), "holds 10,000 labels for 60,000 images"),
        "label value": (lab, lambda: write_idx(lab, np.full(60_000, 11, np.uint8)), "has label 11"),
        "image size": (img, lambda: write_idx(img, np.zeros((60_000, 32, 32), np.uint8)), "images are 32x32"),
        "one file": (lab, lambda: img.unlink(), "found, but not"),
    }


@pytest.mark.parametrize("case", list(_bad_files(Path("."), None)))
def test_bad_files_fail_in_one_line_naming_the_file(tmp_path, idx_dir, mnist, case):
    d = tmp_path / "m"; d.mkdir()
    for name in MNIST_TRAIN_FILES: (d / name).write_bytes((idx_dir / name).read_bytes())
    path, damage, part = _bad_files(d, mnist)[case]
    damage()
    with pytest.raises(RNNWSError) as e: load_mnist("mnist", root=d, download=False)
    msg = str(e.value)
    assert part in msg and str(path) in msg and "\n" not in msg, msg


def test_read_idx_missing_file():
    with pytest.raises(RNNWSError, match="cannot read it"): read_idx(Path("/nonexistent/x"), 1)


def test_missing_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNWS_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(RNNWSError) as e: load_mnist("mnist", download=False)
    msg = str(e.value)
    for part in ("60,000 MNIST training digits", str(tmp_path / "empty"), "MNIST/raw", "train-images-idx3-ubyte", "RNNWS_MNIST_DIR",
                 "torchvision", "--source offline", "not the paper's data"):
        assert part in msg, (part, msg)
    assert "\n" not in msg
    try: import torchvision  # noqa: F401
    except Exception:                                                    # not importable here: the download attempt says so
        with pytest.raises(RNNWSError, match="torchvision is not available to download them.*--source offline"): load_mnist("mnist")
        assert not (tmp_path / "empty" / "MNIST").exists()


def test_presets_and_manifest(idx_dir, monkeypatch):
    assert (get_preset("paper").source, get_preset("small").source, get_preset("tiny").source) == ("mnist", "offline", "offline")
    monkeypatch.setenv("RNNWS_MNIST_DIR", str(idx_dir))
    m = get_preset("paper").manifest({"backend": "cpu"})
    src = m["task_family"]["source"]
    assert (src["name"], src["n_digits"], src["n_train"], src["n_eval"]) == ("mnist", 60_000, 47_998, 12_002)
    assert "mnist_dir" not in m["config"] and m["config"]["source"] == "mnist"
    assert get_preset("tiny").manifest({"backend": "cpu"})["task_family"]["source"]["n_train"] == 8000


def _cli(*argv):
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()): code = main(list(argv))
    return code, err.getvalue().strip()


def test_cli_source_and_mnist_dir(tmp_path, idx_dir, monkeypatch):
    monkeypatch.setenv("RNNWS_MNIST_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, msg = _cli("zoo", "build", "sequential-mnist", "--preset", "paper", "--out", str(tmp_path / "z"), "--no-progress")
    assert code == 2 and "--source offline" in msg and len(msg.splitlines()) == 1 and not (tmp_path / "z").exists()
    cfg = {"n_runs": 2, "steps": 4, "checkpoints": [0, 4], "lr_steps": [0, 4], "lr_values": [0.01, 0.003], "train_loss_images": 50,
           "n_rollouts": 2, "runs_per_shard": 2, "preset": "check"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    code, msg = _cli("zoo", "build", "sequential-mnist", "--config", str(tmp_path / "cfg.json"), "--source", "mnist", "--mnist-dir", str(idx_dir),
                     "--out", str(tmp_path / "z"), "--workers", "1", "--no-progress")
    assert code == 0, msg
    m = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert m["config"]["source"] == "mnist" and "mnist_dir" not in m["config"]
    assert (m["task_family"]["source"]["n_train"], m["task_family"]["source"]["n_eval"]) == (47_998, 12_002)
    for argv, part in [(["--preset", "tiny", "--mnist-dir", str(idx_dir)], "--mnist-dir is for --source mnist"),
                       (["--preset", "tiny", "--source", "mnist", "--mnist-dir", str(tmp_path / "no")], "no such folder")]:
        code, msg = _cli("zoo", "build", "sequential-mnist", *argv, "--out", str(tmp_path / "y"), "--no-progress")
        assert code == 2 and part in msg and not (tmp_path / "y").exists(), msg
    code, msg = _cli("zoo", "build", "formal-languages", "--source", "mnist", "--out", str(tmp_path / "y"))
    assert code == 2 and "sequential-mnist zoos" in msg
    from rnn_weightspace.cli import _load_config, _parser
    args = _parser().parse_args(["zoo", "build", "sequential-mnist", "--preset", "paper", "--source", "offline", "--out", "x"])
    assert _load_config(args).source == "offline"                                # the paper's recipe on the shipped digits
