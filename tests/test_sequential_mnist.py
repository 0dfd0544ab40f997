"""The sequential-MNIST inputs against the authors' pipeline: PIL rotation (what torchvision's RandomRotation does to a
PIL image), tiling, and the shipped digits."""
import numpy as np
import pytest
import torch

from rnn_weightspace.tasks.sequential_mnist import (MNIST_MEAN, MNIST_STD, from_tiles, load_mnist, rotate_images,
                                                   tile_sequences, to_tiles)

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.mark.parametrize("angle", [0, 17, 45, 90, 133.3, 200, 301, 359.9])
def test_rotation_matches_pil_nearest(mnist, angle):
    x = mnist.images[:200]
    ours = rotate_images(x, angle).to(torch.uint8).numpy()
    ref = np.stack([np.array(PIL.fromarray(img).rotate(angle, resample=PIL.NEAREST, fillcolor=0)) for img in x.numpy()])
    assert (ours == ref).mean() > 0.998  # identical except rare nearest-neighbour ties at exact half-pixel positions


def test_tile_sequence_is_the_official_layout(mnist):
    img = mnist.images[7]
    seq = tile_sequences(img, 0.0)
    assert seq.shape == (50, 16) and torch.equal(seq[0], torch.zeros(16))
    norm = (img.float() / 255 - MNIST_MEAN) / MNIST_STD
    for t in range(49):  # tile t covers rows 4*(t//7).., columns 4*(t%7).., flattened row-major
        r, c = divmod(t, 7)
        torch.testing.assert_close(seq[1 + t], norm[4 * r:4 * r + 4, 4 * c:4 * c + 4].flatten())
    assert torch.equal(from_tiles(to_tiles(mnist.images)), mnist.images)


def test_shipped_digits(mnist):
    assert mnist.images.shape == (10_000, 28, 28) and mnist.images.dtype == torch.uint8
    assert torch.bincount(mnist.labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert abs(mnist.images.float().mean().item() / 255 - MNIST_MEAN) < 0.01
    assert abs((mnist.images.float() / 255).std().item() - MNIST_STD) < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(mnist):
    angles = torch.rand(64) * 360
    cpu = tile_sequences(mnist.images[:64], angles)
    gpu = tile_sequences(mnist.images[:64].cuda(), angles.cuda())
    assert (gpu.cpu() == cpu).float().mean() > 0.998
