"""The released-style training step of `benchmarks/released_baseline.py` (the baseline `benchmarks/train_step.py` runs
beside ours) computes what it claims: its functional, vmapped LSTM cells are the zoo's models, its dict permutation
keeps each model's function, and its step trains on a real zoo folder."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from released_baseline import FunctionalLSTM, ReleasedStep, functional_params, permute_neurons, unflatten  # noqa: E402
from torch.func import functional_call, vmap  # noqa: E402

from rnn_weightspace.lstm import lstm_forward  # noqa: E402
from rnn_weightspace.zoo.format import toy_zoo  # noqa: E402
from rnn_weightspace.zoo.reader import Zoo  # noqa: E402


def _run_functional(p, spec, x):
    "The models of dict `p` `[B, ...]` on inputs `x` `[B, T, in]`, one step at a time, as the released probing does."
    rnn = FunctionalLSTM(spec).to("meta")
    step = vmap(lambda w, x, h, c: functional_call(rnn, w, (x, h, c)), in_dims=(0, 0, 1, 1), out_dims=(0, 1, 1))
    B, T = x.shape[:2]
    h = c = torch.zeros(spec.num_layers, B, 1, spec.hidden_size)
    outs = []
    for t in range(T):
        o, h, c = step(functional_params(p, spec), x[:, t, None], h, c)
        outs.append(o[:, 0])
    return torch.stack(outs, 1)                                                 # [B, T, out]


def test_functional_cells_are_the_zoo_models(tmp_path):
    zoo = Zoo(toy_zoo(tmp_path / "zoo"))
    w = zoo.weights[:6]
    x = torch.randn(6, 5, zoo.spec.input_size)
    want = lstm_forward(w, x[:, None])[0][:, 0]                                 # [6, 5, out]
    got = _run_functional(unflatten(w.flatten(), zoo.spec), zoo.spec, x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dict_permutation_keeps_the_function(tmp_path):
    zoo = Zoo(toy_zoo(tmp_path / "zoo"))
    p = unflatten(zoo.weights[:4].flatten(), zoo.spec)
    torch.manual_seed(0)
    q = permute_neurons(p, zoo.spec)
    assert not torch.equal(q["lstm.weight_hh_l0"], p["lstm.weight_hh_l0"])
    x = torch.randn(4, 5, zoo.spec.input_size)
    torch.testing.assert_close(_run_functional(q, zoo.spec, x), _run_functional(p, zoo.spec, x), atol=1e-5, rtol=1e-5)


def test_released_step_trains(small_zoos, tmp_path):
    for kind, encoder in (("fl", "flat"), ("fl", "probe-interactive"), ("mnist", "probe-static")):
        zoo = small_zoos[kind]
        r = ReleasedStep(zoo, encoder, tmp_path / f"arrays-{kind}-{encoder}", batch_size=4)
        before = [t.detach().clone() for t in r.encoder.parameters()]
        for _ in range(2):
            b = r.next_batch()
            loss = r.emulation_loss(r.encode(b), b)
            assert torch.isfinite(loss) and 0 <= loss.item() <= 1                 # a total variation
            r.opt.zero_grad(); loss.backward(); r.clip_and_step()
        assert any(not torch.equal(a, t) for a, t in zip(before, r.encoder.parameters()))
