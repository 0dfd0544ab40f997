"""Learning on the weights of recurrent neural networks: model zoos, weight encoders, emulation and evaluation

Modules:

- `rnn_weightspace.lstm`: The one data type of the library: the weights of many stacked LSTMs with a linear readout, a functional forward batched over models, and conversions to and from `nn.Module`s, state dicts and the authors' flat vectors."""

__version__ = "0.0.1"
