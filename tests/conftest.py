"""Shared pytest settings: one torch thread per process (see `environment.md`: oversubscribing 2 cores makes LSTM
steps up to 300x slower)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_zoos(tmp_path_factory):
    "A 20-run formal-language zoo (3 checkpoints, 5 runs per shard) and a 12-run sequential-MNIST zoo, built once per worker."
    from dataclasses import replace
    from rnn_weightspace.zoo.sequential_mnist import SequentialMNISTZooConfig
    from rnn_weightspace.zoo.train import FormalLanguageZooConfig, build_zoo
    root = tmp_path_factory.mktemp("zoos")
    fl = replace(FormalLanguageZooConfig(), n_runs=20, steps=100, checkpoints=(0, 50, 100), lr_steps=(0, 100), lr_values=(0.01, 0.003),
                 eval_samples=20, n_rollouts=4, runs_per_shard=5, preset="test")
    mn = replace(SequentialMNISTZooConfig(), n_runs=12, steps=30, checkpoints=(0, 30), lr_steps=(0, 30), lr_values=(0.01, 0.003),
                 train_loss_images=20, n_rollouts=2, runs_per_shard=4, preset="test")
    return {"fl": build_zoo(fl, root / "fl", workers=1, progress=False), "mnist": build_zoo(mn, root / "mnist", workers=1, progress=False)}


@pytest.fixture
def read_only():
    "`with read_only(folder):` makes `folder` unwritable for this process: permission bits, or for root (who ignores them) chattr +i."
    import contextlib
    import subprocess

    @contextlib.contextmanager
    def make(folder):
        if os.geteuid() != 0:
            folder.chmod(0o555)
            try: yield
            finally: folder.chmod(0o755)
            return
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
        try: yield
        finally: subprocess.run(["chattr", "-i", str(folder)], check=True)
    return make
