"""Learning on the weights of recurrent neural networks: model zoos, weight encoders, emulation and evaluation

Modules:

- `rnn_weightspace.lstm`: The one data type of the library: the weights of many stacked LSTMs with a linear readout, a functional forward batched over models, and conversions to and from `nn.Module`s, state dicts and the authors' flat vectors.
- `rnn_weightspace.symmetry`: Permutations and sign flips of LSTM hidden units that leave the network's function unchanged, applied batched with a different group element for every model: the exact symmetries of weight space, and the augmentation for the encoders that do not respect them.
- `rnn_weightspace.tasks.sequential_mnist`: Real MNIST digits offline, rotated and cut into 4×4 tiles as batched tensor operations: the inputs of the sequential-MNIST model zoo, where each run's task is a rotation angle.
- `rnn_weightspace.zoo.format`: One folder per zoo: a JSON manifest, memory-mappable safetensors shards of weights and rollouts, a metadata table, and task-level splits; `Zoo` opens it lazily and serves weights, rollouts and targets.
- `rnn_weightspace.zoo.official`: Read the folder layout of the zoos released with the paper (memory-mapped `.npy` files) safely, and convert them into this library's format: `rnnws zoo import-official SRC --out DIR`.
- `rnn_weightspace.zoo.sequential_mnist`: LSTMs that classify rotated MNIST digits read as sequences of 4×4 tiles: one rotation angle and one weight decay per run, trained with the same backends, format and resume as the formal-language zoo.
- `rnn_weightspace.zoo.train`: Presets, the two trainer backends (CPU processes with fused `nn.LSTM`, or many runs batched on one device), and resumable, bit-reproducible zoo builds."""

__version__ = "0.0.1"
