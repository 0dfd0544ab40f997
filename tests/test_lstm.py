"""Per-variant checks of the LSTM weight core: the functional forward and single step against `nn.LSTM` for every
combination of layers, sizes and batch shapes, explicit states, gradients, and the conversions."""
import pytest
import torch
from torch import nn

from rnn_weightspace.core import RNNWSError
from rnn_weightspace.lstm import LSTMModel, LSTMSpec, LSTMWeights, lstm_forward, lstm_step, zero_state

SPECS = [LSTMSpec(6, 32, 2, 6), LSTMSpec(16, 32, 2, 10), LSTMSpec(3, 5, 1, 2), LSTMSpec(4, 8, 3, 7)]
BATCHES = [(), (4,), (2, 3)]


def _models(spec, batch, seed=0):
    return LSTMWeights.init(spec, batch, generator=torch.Generator().manual_seed(seed))


def _each(batch):
    import itertools
    return list(itertools.product(*[range(b) for b in batch]))


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("batch", BATCHES, ids=str)
def test_forward_matches_nn_lstm(spec, batch):
    w = _models(spec, batch)
    g = torch.Generator().manual_seed(1)
    N, T, L, H = 3, 7, spec.num_layers, spec.hidden_size
    x = torch.randn(*batch, N, T, spec.input_size, generator=g)
    state = (torch.randn(*batch, L, N, H, generator=g), torch.randn(*batch, L, N, H, generator=g))
    y, (h, c) = lstm_forward(w, x, state)
    assert y.shape == (*batch, N, T, spec.output_size) and h.shape == c.shape == (*batch, L, N, H)
    for idx in _each(batch):
        m = w[idx].to_module() if batch else w.to_module()
        y_ref, (h_ref, c_ref) = m(x[idx], (state[0][idx], state[1][idx]))
        torch.testing.assert_close(y[idx], y_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(h[idx], h_ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(c[idx], c_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("batch", BATCHES, ids=str)
def test_step_by_step_equals_forward(spec, batch):
    w = _models(spec, batch)
    x = torch.randn(*batch, 2, 5, spec.input_size, generator=torch.Generator().manual_seed(2))
    y, (h, c) = lstm_forward(w, x)
    state = zero_state(w, 2)
    for t in range(5):
        y_t, state = lstm_step(w, x[..., t, :], state)
        torch.testing.assert_close(y_t, y[..., t, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(state[0], h, atol=1e-5, rtol=0)
    torch.testing.assert_close(state[1], c, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_gradients_match_nn_lstm(spec):
    w = _models(spec, (2,)).requires_grad_()
    x = torch.randn(2, 3, 4, spec.input_size, generator=torch.Generator().manual_seed(3))
    lstm_forward(w, x)[0].sin().sum().backward()
    for i in range(2):
        m = w[i].detach().to_module()
        m(x[i])[0].sin().sum().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(w[name].grad[i], p.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_conversions_round_trip(spec):
    m = LSTMModel(spec)
    w = LSTMWeights.from_module(m)
    flat = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert w.flatten().shape == (spec.n_params,) and torch.equal(w.flatten(), flat)
    assert torch.equal(LSTMWeights.from_flat(flat, spec).flatten(), flat)
    m2 = w.to_module()
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    wb = _models(spec, (2, 3))
    assert torch.equal(LSTMWeights.from_flat(wb.flatten(), spec).flatten(), wb.flatten())
    assert torch.equal(LSTMWeights.from_state_dict(wb.state_dict()).flatten(), wb.flatten())


def test_official_parameter_counts():
    assert LSTMSpec(6, 32, 2, 6).n_params == 13_766   # formal languages
    assert LSTMSpec(16, 32, 2, 10).n_params == 15_178  # sequential MNIST


def test_from_module_accepts_plain_lstm_and_linear_pair():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.linear = nn.LSTM(6, 16, 2, batch_first=True), nn.Linear(16, 6)
    net = Net()
    w = LSTMWeights.from_module(net)
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(lstm_forward(w, x)[0], net.linear(net.lstm(x)[0]), atol=1e-5, rtol=0)
    net.lstm = nn.LSTM(6, 16, 2, batch_first=True, bidirectional=True)
    with pytest.raises(RNNWSError, match="unidirectional"):
        LSTMWeights.from_module(net)


def test_bad_inputs_name_the_problem():
    w = _models(LSTMSpec(6, 8, 2, 6), (3,))
    with pytest.raises(RNNWSError, match="input_size=6"):
        lstm_forward(w, torch.randn(3, 2, 4, 5))
    with pytest.raises(RNNWSError, match=r"\(3, 2, 2, 8\)"):
        lstm_step(w, torch.randn(3, 2, 6), (torch.zeros(3, 2, 8), torch.zeros(3, 2, 8)))
    with pytest.raises(RNNWSError, match="lstm.weight_hh_l1"):
        LSTMWeights(w.weight_ih, [w.weight_hh[0], w.weight_hh[1][..., :4]], w.bias_ih, w.bias_hh, w.weight_out, w.bias_out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    w = _models(LSTMSpec(6, 32, 2, 6), (8,))
    x = torch.randn(8, 4, 10, 6)
    y_cpu = lstm_forward(w, x)[0]
    y_gpu = lstm_forward(w.to("cuda"), x.cuda())[0]
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-4, rtol=1e-4)
