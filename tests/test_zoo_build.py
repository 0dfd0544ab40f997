"""Zoo builds as a user runs them: the real `rnnws` command in a subprocess, killed mid-build and resumed, compared
byte for byte with an uninterrupted build; damaged folders; and the two trainer backends on the same runs."""
import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_weightspace.zoo.dataset import zoo_collate
from rnn_weightspace.zoo.reader import Zoo
from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo

# the `rnnws` command as users run it, through this interpreter (no dependence on what PATH holds)
RNNWS = [sys.executable, "-m", "rnn_weightspace.cli"]

CFG = {"n_runs": 8, "steps": 150, "checkpoints": [0, 50, 100, 150], "lr_steps": [0, 150], "lr_values": [0.01, 0.003],
       "eval_samples": 200, "n_rollouts": 5, "runs_per_shard": 2, "seed": 7, "preset": "test"}


def rnnws(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*RNNWS, *map(str, args)], capture_output=True, text=True, env=env, **kw)


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    (d / "cfg.json").write_text(json.dumps(CFG))
    r = rnnws("zoo", "build", "formal-languages", "--config", d / "cfg.json", "--out", d / "zoo", "--workers", 2, "--no-progress")
    assert r.returncode == 0, r.stderr
    return d


def test_killed_build_resumes_bit_identical(reference, tmp_path):
    out = tmp_path / "zoo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([*RNNWS, "zoo", "build", "formal-languages", "--config",
                          str(reference / "cfg.json"), "--out", str(out), "--workers", "2", "--no-progress"],
                         env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least one shard is recorded, then kill the whole process group
        mf = out / "manifest.json"
        if mf.exists():
            try: m = json.loads(mf.read_text())
            except json.JSONDecodeError: m = None  # never happens with atomic writes, but do not kill on a parse race
            if m and 1 <= len(m["shards"]) < 4: break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    m = json.loads((out / "manifest.json").read_text())
    assert not m["complete"], "the build finished before it could be killed; make CFG larger"
    r = rnnws("zoo", "build", "formal-languages", "--config", reference / "cfg.json", "--out", out, "--workers", 2, "--no-progress")
    assert r.returncode == 2 and "--resume" in r.stderr  # a partial build is never overwritten silently
    r = rnnws("zoo", "build", "formal-languages", "--config", reference / "cfg.json", "--out", out, "--workers", 2, "--resume", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert tree(out) == tree(reference / "zoo")


def test_truncated_shard_is_reported_and_rebuilt_on_resume(reference, tmp_path):
    out = tmp_path / "zoo"
    shutil.copytree(reference / "zoo", out)
    f = out / "shards" / "00002.rollouts.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    r = rnnws("zoo", "info", out)
    assert r.returncode == 2 and "00002.rollouts.safetensors: file is truncated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = rnnws("zoo", "build", "formal-languages", "--config", reference / "cfg.json", "--out", out, "--workers", 1, "--resume", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "shard 2" in r.stderr and "rebuilt" in r.stderr
    assert tree(out) == tree(reference / "zoo")


def test_bad_folders_give_one_line_errors_and_keep_data(reference, tmp_path):
    out = tmp_path / "zoo"
    shutil.copytree(reference / "zoo", out)
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "format_version": 3}))   # 1 and 2 (mixed zoos) are read
    r = rnnws("zoo", "info", out)
    assert r.returncode == 2 and "format_version 3 is not supported" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (out / "manifest.json").write_text(json.dumps(m))
    f = out / "shards" / "00001.weights.safetensors"
    data = bytearray(f.read_bytes()); data[-3] ^= 1; f.write_bytes(bytes(data))
    assert rnnws("zoo", "info", out, "--no-verify").returncode == 0   # sizes match: the summary alone does not read the data
    r = rnnws("zoo", "info", out)                                      # the default checks every file
    assert r.returncode == 2 and "00001.weights.safetensors: checksum mismatch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    before = tree(out)
    r = rnnws("zoo", "build", "formal-languages", "--preset", "nonsense", "--out", out)
    assert r.returncode == 2 and "invalid choice: 'nonsense'" in r.stderr
    r = rnnws("zoo", "build", "formal-languages", "--config", reference / "cfg.json", "--seed", 8, "--out", out, "--no-progress")
    assert r.returncode == 2 and "holds a different zoo" in r.stderr
    assert tree(out) == before


def test_batched_backend_matches_cpu_backend(reference, tmp_path):
    cfg = FormalLanguageZooConfig.from_dict(CFG)
    batched = build_zoo(cfg, tmp_path / "b", backend="batched", device="cpu", progress=False)
    cpu = Zoo(reference / "zoo")
    wb, wc = batched.weights[:].flatten(), cpu.weights[:].flatten()
    mb, mc = batched.metadata, cpu.metadata
    assert (mb.run == mc.run).all() and (mb.step == mc.step).all() and (mb.task == mc.task).all()
    step = torch.as_tensor(np.array(mc.step))
    assert torch.equal(wb[step == 0], wc[step == 0])                      # same initialisation, bit for bit
    rel = (wb - wc).norm(dim=1) / wc.norm(dim=1)
    assert rel[step == 50].max() < 1e-4 and (wb - wc)[step == 50].abs().max() < 1e-3   # same training up to rounding...
    assert rel.max() < 1e-2           # ...which Adam amplifies (~10x per 50 steps: weights with ~0 gradient move by ±lr)
    assert np.allclose(mb.train_loss, mc.train_loss, atol=1e-3)
    assert np.abs(mb.accuracy - mc.accuracy).max() <= 0.02


def test_zoo_reader_on_a_real_build(reference):
    zoo = Zoo(reference / "zoo", verify=True)
    assert len(zoo) == 8 * 4 and zoo.spec.n_params == 13_766
    md = zoo.metadata
    assert set(md.split) <= {"train", "val", "ood"} and md.groupby("run").split.nunique().max() == 1  # a run never straddles splits
    assert md.groupby("run").size().tolist() == [4] * 8
    # stored rollouts are the model's own samples: its log-probs reproduce on re-run
    i = 5
    m = zoo.to_module(i)
    roll = zoo.rollouts[i]
    x = torch.nn.functional.one_hot(roll["tokens"].long()[:, :-1], 6).float()
    assert torch.allclose(torch.softmax(m(x)[0], -1), roll["log_probs"].float().exp(), atol=2e-3)
    ds = zoo.split("train").dataset(n_rollouts=2)
    b = ds.batch(list(range(len(ds))))
    assert b["weights"].batch_shape == (len(ds),) and b["tokens"].shape == (len(ds), 2, 42)


def test_batched_resume_retrains_whole_groups_bit_identical(tmp_path):
    "A batched build stopped inside a group of runs resumes by re-training that whole group: same bytes as uninterrupted."
    cfg = FormalLanguageZooConfig.from_dict({**CFG, "steps": 40, "checkpoints": [0, 20, 40], "lr_steps": [0, 40]})
    full = build_zoo(cfg, tmp_path / "full", backend="batched", device="cpu", batch_runs=4, progress=False)
    assert full.manifest["build"] == {"backend": "batched", "device": "cpu", "batch_runs": 4}
    build_zoo(cfg, tmp_path / "part", backend="batched", device="cpu", batch_runs=4, max_shards=3, progress=False)  # stops mid-group
    build_zoo(cfg, tmp_path / "part", backend="batched", device="cpu", batch_runs=4, resume=True, progress=False)
    assert tree(tmp_path / "part") == tree(tmp_path / "full")
    with pytest.raises(Exception, match="differs in build"):
        build_zoo(cfg, tmp_path / "part", backend="batched", device="cpu", batch_runs=2, progress=False)


def test_build_restores_the_callers_thread_settings(tmp_path):
    before = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    cfg = FormalLanguageZooConfig.from_dict({**CFG, "n_runs": 2, "steps": 10, "checkpoints": [0, 10], "lr_steps": [0, 10]})
    build_zoo(cfg, tmp_path / "z", progress=False)
    assert (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")) == before


@pytest.mark.parametrize("spec", [(6, 32, 2, 6), (16, 32, 2, 10), (3, 5, 3, 2)])
def test_from_modules_round_trip_is_exact(tmp_path, spec):
    from rnn_weightspace.lstm import LSTMModel, LSTMSpec
    torch.manual_seed(0)
    models = [LSTMModel(LSTMSpec(*spec)) for _ in range(7)]
    zoo = Zoo.from_modules(tmp_path / "z", models, metadata={"task": [i % 3 for i in range(7)], "score": list(range(7))},
                           splits={"val": [1], "ood": [2]}, models_per_shard=3)
    zoo = Zoo(tmp_path / "z", verify=True)
    assert len(zoo) == 7 and len(zoo.manifest["shards"]) == 3
    for i, m in enumerate(models):
        back = zoo.to_module(i).state_dict()
        assert all(torch.equal(v, back[k]) for k, v in m.state_dict().items())
    assert sorted(zoo.split("ood").metadata.score) == [2, 5] and sorted(zoo.split("val").metadata.score) == [1, 4]
    loader = torch.utils.data.DataLoader(zoo.dataset(), batch_size=4, collate_fn=zoo_collate)
    batch = next(iter(loader))
    assert batch["weights"].batch_shape == (4,) and batch["task"].tolist() == [0, 1, 2, 0]


MNIST_CFG = {"n_runs": 4, "steps": 30, "checkpoints": [0, 15, 30], "lr_steps": [0, 30], "lr_values": [0.01, 0.003],
             "train_loss_images": 100, "n_rollouts": 3, "runs_per_shard": 2, "seed": 3, "preset": "test"}


def test_sequential_mnist_cli_build_resume_and_backends(tmp_path):
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    (tmp_path / "cfg.json").write_text(json.dumps(MNIST_CFG))
    r = rnnws("zoo", "build", "sequential-mnist", "--config", tmp_path / "cfg.json", "--out", tmp_path / "full", "--workers", 2, "--no-progress")
    assert r.returncode == 0, r.stderr
    cfg = SequentialMNISTZooConfig.from_dict(MNIST_CFG)
    build_zoo(cfg, tmp_path / "part", max_shards=1, progress=False)
    build_zoo(cfg, tmp_path / "part", resume=True, progress=False)
    assert tree(tmp_path / "part") == tree(tmp_path / "full")
    zoo = Zoo(tmp_path / "full", verify=True)
    md = zoo.metadata
    assert len(zoo) == 12 and zoo.spec.n_params == 15_178
    assert np.allclose(md.generalization_gap, md.eval_loss - md.train_loss)
    assert set(md.weight_decay) <= {0.0, 0.001, 0.01, 0.1} and md.groupby("run").angle.nunique().max() == 1
    roll = zoo.rollouts[5]
    assert roll["inputs"].shape == (3, 50, 16) and roll["labels"].shape == (3,) and roll["log_probs"].shape == (3, 50, 10)
    # the stored log-probs are the model's on the stored inputs
    m = zoo.to_module(5)
    torch.testing.assert_close(torch.log_softmax(m(roll["inputs"].float())[0], -1).exp(), roll["log_probs"].float().exp(), atol=3e-3, rtol=0)
    batched = build_zoo(cfg, tmp_path / "b", backend="batched", device="cpu", progress=False)
    rel = (batched.weights[:].flatten() - zoo.weights[:].flatten()).norm(dim=1) / zoo.weights[:].flatten().norm(dim=1)
    assert rel.max() < 1e-3 and np.allclose(batched.metadata.eval_loss, md.eval_loss, atol=1e-3)


@pytest.mark.parametrize("kind", ["formal-languages", "sequential-mnist"])
def test_import_official_via_cli(tmp_path, kind):
    from rnn_weightspace.zoo.official import write_official_fixture
    ws = write_official_fixture(tmp_path / "src", kind, n_runs=5, invocations=3)
    r = rnnws("zoo", "import-official", tmp_path / "src", "--out", tmp_path / "zoo", "--runs-per-shard", 2)
    assert r.returncode == 0, r.stderr
    zoo = Zoo(tmp_path / "zoo", verify=True)
    assert len(zoo) == 45 and zoo.metadata.run.tolist() == [r for r in range(5) for _ in range(9)]
    assert torch.equal(zoo.weights[:].flatten(), torch.stack([w.flatten() for w in ws]))
    assert sum(len(zoo.split(s)) for s in ("train", "val", "ood")) == 45
    r = rnnws("zoo", "import-official", tmp_path / "zoo", "--out", tmp_path / "again")
    assert r.returncode == 2 and "not a released zoo folder" in r.stderr
    from rnn_weightspace.zoo.official import open_official
    inplace = open_official(tmp_path / "src")                 # the same zoo, read in place from the .npy files
    idx = [44, 0, 17, 17]
    assert torch.equal(inplace.weights[idx].flatten(), zoo.weights[idx].flatten())
    for k, v in zoo.rollouts[idx].items(): assert torch.equal(inplace.rollouts[idx][k], v)
    assert inplace.manifest["splits"] == zoo.manifest["splits"]


def test_train_run_gives_the_builders_bits_at_any_thread_count():
    "`train_run` trains on one thread, as the builder does: called on two threads it still returns the stored run's bits."
    from rnn_weightspace.core import using_threads
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    fl = FormalLanguageZooConfig.from_dict({**CFG, "steps": 20, "checkpoints": [0, 20], "lr_steps": [0, 20]})
    mn = SequentialMNISTZooConfig.from_dict({**SequentialMNISTZooConfig().to_dict(), "n_runs": 2, "steps": 10, "checkpoints": [0, 10],
                                             "lr_steps": [0, 10], "lr_values": [0.01, 0.003], "train_loss_images": 20, "n_rollouts": 2,
                                             "preset": "test"})
    for cfg in (fl, mn):
        with using_threads(1): ref = cfg.train_run(1).weights.flatten()
        with using_threads(2):
            got = cfg.train_run(1).weights.flatten()
            assert torch.get_num_threads() == 2                                  # the caller's setting back
        assert torch.equal(got, ref), type(cfg).__name__
