"""Learning on the weights of recurrent neural networks: model zoos, weight encoders, emulation and evaluation"""

__version__ = "0.0.1"

from .api import __dir__, __getattr__  # the flat public API (nbs/95_api.ipynb): `from rnn_weightspace import Zoo, train, ...`
