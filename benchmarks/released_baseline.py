"""The authors' training step, structured as the released code is, for benchmarks run beside ours.

Re-implemented from the description in the project's reference notes (the released code has no licence; nothing here
is copied from it). What is theirs is the *structure* of one training step:

- data: the train split as memory-mapped `.npy` arrays (flat parameters, stored sequences and log-probabilities), a
  `Dataset` whose item draws its sequence with `np.random.choice` (without replacement), and a shuffled `DataLoader`
  with `num_workers=0` and the default collate;
- the flat parameters are split into a dict of tensors every step; permutation augmentation (flat and parameter
  transformer only) draws one permutation per LSTM layer, shared by the whole batch, and applies it to the dict;
- the probing encoders run the probed RNNs through `torch.func.functional_call` under `torch.vmap` (one weight set per
  zoo member) with hand-written LSTM cells, step by step; the core is two `nn.LSTMCell`s with residual connections,
  handed the whole concatenated input history at every step (as released: only its last element is used);
- the emulator is an `nn.LSTM` conditioned at the first step, the loss the total variation between the
  `Categorical` distributions, AdamW, and gradient-norm clipping of the encoder and of the emulator separately.

The mechanistic encoders are the library's own modules (the same functions as the released ones); only the probing
encoders differ in how they run, which is what their speed depends on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from rnn_weightspace.emulation import Emulator
from rnn_weightspace.encoders.base import input_domain, make_encoder
from rnn_weightspace.lstm import LSTMWeights
from rnn_weightspace.zoo.reader import Zoo


def write_arrays(zoo: Zoo, folder: Path) -> dict[str, np.ndarray]:
    "The train split of `zoo` as the released data path reads it: memory-mapped `.npy` arrays (parameters, sequences, log-probs)."
    view = zoo.split("train")
    folder.mkdir(parents=True, exist_ok=True)
    w = view.weights[:].flatten().numpy().astype(np.float32)                   # [N, P], the official flat order
    r = view.rollouts[:]
    seq = (r["tokens"] if "tokens" in r else r["inputs"]).numpy()             # [N, n, T+1] tokens or [N, n, T, in] inputs
    logp = r["log_probs"].float().numpy()                                      # [N, n, T, out]
    out = {}
    for name, a in (("parameters", w), ("sequences", seq), ("log_probs", logp)):
        np.save(folder / f"{name}.npy", a)
        out[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return out


class ReleasedDataset(torch.utils.data.Dataset):
    "One item: a checkpoint's flat parameters and `n` of its stored sequences, drawn without replacement."
    def __init__(self, arrays: dict[str, np.ndarray], n: int = 1):
        self.a, self.n = arrays, n
    def __len__(self): return len(self.a["parameters"])
    def __getitem__(self, i):
        k = np.random.choice(self.a["sequences"].shape[1], self.n, replace=False)
        return {"parameters": torch.from_numpy(np.array(self.a["parameters"][i])),
                "sequences": torch.from_numpy(np.array(self.a["sequences"][i][k])),
                "log_probs": torch.from_numpy(np.array(self.a["log_probs"][i][k]))}


def unflatten(flat: Tensor, spec) -> dict[str, Tensor]:
    "The flat vectors `[B, P]` as a dict of named tensors `[B, ...]` (nn.LSTM order, then the readout), split anew every step."
    return LSTMWeights.from_flat(flat, spec).state_dict()


def permute_neurons(p: dict[str, Tensor], spec) -> dict[str, Tensor]:
    "One random permutation of each LSTM layer's hidden units, shared by the batch, applied to the dict (as released)."
    p, c, G, H = dict(p), spec.cell, spec.gates, spec.hidden_size
    for l in range(spec.num_layers):
        perm = torch.randperm(H)
        rows = (torch.arange(G)[:, None] * H + perm[None]).reshape(-1)           # the same permutation in every gate
        for k in (f"{c}.weight_ih_l{l}", f"{c}.weight_hh_l{l}", f"{c}.bias_ih_l{l}", f"{c}.bias_hh_l{l}"):
            p[k] = p[k][:, rows]
        p[f"{c}.weight_hh_l{l}"] = p[f"{c}.weight_hh_l{l}"][:, :, perm]
        nxt = f"{c}.weight_ih_l{l + 1}" if l + 1 < spec.num_layers else "linear.weight"
        p[nxt] = p[nxt][:, :, perm]
    return p


class FunctionalLSTM(nn.Module):
    "Hand-written LSTM cells (i2h and h2h linear layers, PyTorch's gate order) and a linear head, run one step at a time."
    def __init__(self, spec):
        super().__init__()
        H = spec.hidden_size
        self.i2h = nn.ModuleList(nn.Linear(spec.layer_input_size(l), 4 * H) for l in range(spec.num_layers))
        self.h2h = nn.ModuleList(nn.Linear(H, 4 * H) for _ in range(spec.num_layers))
        self.head = nn.Linear(H, spec.output_size)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        hs, cs = [], []
        for l, (i2h, h2h) in enumerate(zip(self.i2h, self.h2h)):
            i, f, g, o = (i2h(x) + h2h(h[l])).chunk(4, -1)
            cl = torch.sigmoid(f) * c[l] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(cl)
            hs.append(x); cs.append(cl)
        return self.head(x), torch.stack(hs), torch.stack(cs)


def functional_params(p: dict[str, Tensor], spec) -> dict[str, Tensor]:
    "The dict of flat-order tensors under `FunctionalLSTM`'s names (as released: renamed every step)."
    c, out = spec.cell, {}
    for l in range(spec.num_layers):
        out[f"i2h.{l}.weight"], out[f"i2h.{l}.bias"] = p[f"{c}.weight_ih_l{l}"], p[f"{c}.bias_ih_l{l}"]
        out[f"h2h.{l}.weight"], out[f"h2h.{l}.bias"] = p[f"{c}.weight_hh_l{l}"], p[f"{c}.bias_hh_l{l}"]
    out["head.weight"], out["head.bias"] = p["linear.weight"], p["linear.bias"]
    return out


class ReleasedProbingEncoder(nn.Module):
    "The released probing encoder's structure: an LSTMCell core reads the probed RNNs' answers to probes it decodes."
    def __init__(self, spec, input_size: int, interactive: bool, probe_length: int = 22, hidden_size: int = 256,
                 encoding_size: int = 128, embedding_size: int = 16, soft_tokens: bool = True):
        super().__init__()
        C, self.spec, self.L, self.interactive, self.soft_tokens = hidden_size, spec, probe_length, interactive, soft_tokens
        self.cells = nn.ModuleList(nn.LSTMCell(C, C) for _ in range(2))
        self.bos, self.eos = nn.Parameter(torch.zeros(C)), nn.Parameter(torch.zeros(C))
        self.codes = nn.Parameter(torch.randn(probe_length + 1, C))
        self.proj_up = nn.Sequential(nn.Linear(C, encoding_size), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(encoding_size, 128), nn.ReLU(), nn.Linear(128, input_size))
        self.read = nn.Sequential(nn.Linear(spec.output_size, C), nn.Sigmoid())
        self.out = nn.Sequential(nn.Linear(C, 128), nn.ReLU(), nn.Linear(128, embedding_size))
        object.__setattr__(self, "rnn", FunctionalLSTM(spec).to("meta"))    # a template for functional_call, not a submodule

    def _core(self, history: list[Tensor], state):
        x = torch.stack(history, 1)[:, -1]                                      # the whole history is built; the last step is used
        new = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c)); new.append((h, c)); x = h + x               # residual
        return x, new

    def forward(self, p: dict[str, Tensor]) -> Tensor:
        B, C = next(iter(p.values())).shape[0], self.bos.shape[0]
        fp = functional_params(p, self.spec)
        step = vmap(lambda w, x, h, c: functional_call(self.rnn, w, (x, h, c)), in_dims=(0, 0, 1, 1), out_dims=(0, 1, 1))
        L, H = self.spec.num_layers, self.spec.hidden_size
        h = torch.zeros(L, B, 1, H); c = torch.zeros(L, B, 1, H)               # P = 1 probe sequence per model
        state = [(torch.zeros(B, C), torch.zeros(B, C)) for _ in self.cells]
        history = [self.bos.expand(B, C)]
        y, state = self._core(history, state)
        for t in range(self.L):
            z = y if self.interactive else self.codes[t].expand(B, C)
            x = self.decoder(self.proj_up(z))
            x = x.softmax(-1) if self.soft_tokens else torch.sigmoid(x)
            o, h, c = step(fp, x[:, None], h, c)                               # [B, 1, out]
            history.append(self.read(o[:, 0]))
            y, state = self._core(history, state)
        history.append(self.eos.expand(B, C))
        y, state = self._core(history, state)
        return self.out(y)


class ReleasedStep:
    "One model per process, trained the released way; `step()` is one optimizer step, `parts` its timed pieces."
    def __init__(self, zoo: Zoo, encoder: str, folder: Path, batch_size: int = 64, seed: int = 0):
        torch.manual_seed(seed); np.random.seed(seed)
        self.spec, domain = zoo.spec, input_domain(zoo)
        self.tokens = domain.kind == "tokens"
        self.domain_size = domain.size
        if encoder in ("probe-static", "probe-interactive"):
            self.encoder = ReleasedProbingEncoder(self.spec, domain.size, interactive=encoder == "probe-interactive",
                                                  probe_length=22 if self.tokens else 50, soft_tokens=self.tokens)
            self.takes_dict = True
        else:
            self.encoder = make_encoder(encoder, self.spec, size="paper", domain=domain, embedding_size=16)
            self.takes_dict = False
        self.augment = encoder in ("flat", "param-transformer")
        self.emulator = Emulator.from_size("paper", domain.size, self.spec.output_size, embedding_size=16)
        params = list(self.encoder.parameters()) + list(self.emulator.parameters())
        self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        self.loader = torch.utils.data.DataLoader(ReleasedDataset(write_arrays(zoo, folder)), batch_size=batch_size,
                                                  shuffle=True, num_workers=0, drop_last=True)
        self.batches = iter(self.loader)

    def next_batch(self) -> dict[str, Tensor]:
        try: return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader); return next(self.batches)

    def encode(self, b: dict[str, Tensor]) -> Tensor:
        p = unflatten(b["parameters"], self.spec)
        if self.augment: p = permute_neurons(p, self.spec)
        z = self.encoder(p) if self.takes_dict else self.encoder(LSTMWeights.from_state_dict(p))
        return nn.functional.normalize(z, dim=-1)                              # [B, 16]

    def emulation_loss(self, z: Tensor, b: dict[str, Tensor]) -> Tensor:
        seq = b["sequences"][:, 0]                                             # one sequence per model
        x = nn.functional.one_hot(seq[:, :-1].long(), self.domain_size).float() if self.tokens else seq.float()
        logits = self.emulator(z, x)                                           # the emulator normalises again: idempotent
        p_dist = torch.distributions.Categorical(logits=b["log_probs"][:, 0].float()).probs
        q_dist = torch.distributions.Categorical(logits=logits).probs
        return (0.5 * (p_dist - q_dist).abs().sum(-1)).mean()

    def clip_and_step(self):
        nn.utils.clip_grad_norm_(self.encoder.parameters(), 0.1)
        nn.utils.clip_grad_norm_(self.emulator.parameters(), 0.1)
        self.opt.step()
