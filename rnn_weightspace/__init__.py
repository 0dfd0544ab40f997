"""Learning on the weights of recurrent neural networks: model zoos, weight encoders, emulation and evaluation"""

__version__ = "0.0.1"
