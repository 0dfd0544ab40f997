"""Shared pytest settings: one torch thread per process (see `environment.md`: oversubscribing 2 cores makes LSTM
steps up to 300x slower)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
