"""Learning on the weights of recurrent neural networks: model zoos, weight encoders, emulation and evaluation

Modules:

- `rnn_weightspace.cli`: Build and inspect model zoos and list the weight encoders from the shell. The command only parses arguments and calls the library.
- `rnn_weightspace.clones`: Run the emulator, conditioned only on E(θ), as if it were the RNN, on the RNN's own task: a clone that solves the task as well as the original shows that the embedding carries the function, not just a summary of it.
- `rnn_weightspace.emulation`: The paper's self-supervised objective: an emulator, conditioned only on the embedding z = E(θ), must reproduce the RNN's output distribution at every step of the RNN's own rollouts. The emulator, the divergences it can be trained with, and the loss of one batch.
- `rnn_weightspace.encoders.base`: What every weight encoder is: a module from a batch of LSTM weights to an embedding z ∈ ℝ^Z, which knows the models it accepts, its size, and the symmetries it respects. A registry by name, and the checks every encoder must pass.
- `rnn_weightspace.encoders.dws`: The DWS/NFN encoder adapted to LSTMs: the gates become channels, one permutation per layer acts on the hidden units, and every layer is a full basis of the linear maps that commute with those permutations. Mean pooling over the hidden axes makes the embedding exactly invariant to hidden-unit permutations.
- `rnn_weightspace.encoders.flat`: All parameters in one vector, then an MLP: universal in principle, blind to the symmetries of weight space, and therefore trained on randomly permuted copies of every model.
- `rnn_weightspace.encoders.probing`: The two functionalist encoders of the paper (§3.5, §3.6): they never read a weight, they run the RNN on probe inputs they generate and summarise its answers. The non-interactive one asks a learned, fixed list of questions; the interactive one chooses each question from the previous answers. Both are exactly invariant to the hidden-unit symmetries, and both work on any recurrent black box.
- `rnn_weightspace.encoders.stats`: The simplest mechanistic encoder (Unterthiner et al. 2020): a handful of statistics of every weight block, then an MLP. Invariant to hidden-unit permutations by construction, cheap, and not universal.
- `rnn_weightspace.encoders.transformer`: One token per neuron (a weight row and its bias), a Transformer encoder over all of them, and a summary token that becomes the embedding (Schürholt et al. 2021, as adapted in the paper).
- `rnn_weightspace.lstm`: The one data type of the library: the weights of many stacked LSTMs with a linear readout, a functional forward batched over models, and conversions to and from `nn.Module`s, state dicts and the authors' flat vectors.
- `rnn_weightspace.symmetry`: Permutations and sign flips of LSTM hidden units that leave the network's function unchanged, applied batched with a different group element for every model: the exact symmetries of weight space, and the augmentation for the encoders that do not respect them.
- `rnn_weightspace.tasks.sequential_mnist`: Real MNIST digits offline, rotated and cut into 4×4 tiles as batched tensor operations: the inputs of the sequential-MNIST model zoo, where each run's task is a rotation angle.
- `rnn_weightspace.training`: One training loop for every encoder: a typed config with presets, runs as folders (resolved config, metrics, atomic checkpoints), exact resume, validation on the val and OOD splits with confidence intervals, best-checkpoint selection, and a clear stop on a non-finite loss.
- `rnn_weightspace.zoo.format`: One folder per zoo: a JSON manifest, memory-mappable safetensors shards of weights and rollouts, a metadata table, and task-level splits; `Zoo` opens it lazily and serves weights, rollouts and targets.
- `rnn_weightspace.zoo.official`: Read the folder layout of the zoos released with the paper (memory-mapped `.npy` files) safely, and convert them into this library's format: `rnnws zoo import-official SRC --out DIR`.
- `rnn_weightspace.zoo.sequential_mnist`: LSTMs that classify rotated MNIST digits read as sequences of 4×4 tiles: one rotation angle and one weight decay per run, trained with the same backends, format and resume as the formal-language zoo.
- `rnn_weightspace.zoo.train`: Presets, the two trainer backends (CPU processes with fused `nn.LSTM`, or many runs batched on one device), and resumable, bit-reproducible zoo builds."""

__version__ = "0.0.1"
