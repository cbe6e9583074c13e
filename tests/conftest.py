"""Test-session setup: without a CUDA device the Triton kernels run in Triton's CPU interpreter.

TRITON_INTERPRET is read when a kernel is decorated, so it must be set before any kernel module
is imported; conftest.py is loaded before the test modules are collected.
"""
import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
else:  # exactness tests compare fp32 results: no TF32 in cuDNN's convolutions or in matmuls
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


SMALL = dict(encoder=(4, 4, 6, 6, 6), decoder=(6, 6, 6, 4, 4))  # a MindNet small enough for any test


@pytest.fixture(scope="module")
def net():
    """A small random-weight MindNet (seed 1) in eval mode; modules that need another define their own."""
    import mind_engine as me

    torch.manual_seed(1)
    return me.MindNet(**SMALL).eval()


@pytest.fixture(scope="module")
def pair():
    """Two random 50x40 uint8 RGB images (HxWx3)."""
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A small clip (96x64 frames): a smooth texture translating by 2 px per frame."""
    import cv2
    import imageio.v3 as iio
    import numpy as np

    d = tmp_path_factory.mktemp("clip")
    big = (cv2.resize(np.random.default_rng(0).random((12, 16, 3)), (160, 120)).clip(0, 1) * 255).astype(np.uint8)
    for t in range(16):
        iio.imwrite(d / f"{t:03d}.png", big[20:84, 2 * t:2 * t + 96])
    return d


def write_batch_inputs(folder, n: int, seed: int):
    """A tiny random-weight model (``folder/tiny.safetensors``) and ``n`` random 64x64 PNGs
    ``folder/0.png`` .. for the batch-matching tests."""
    import imageio.v3 as iio
    import numpy as np

    import mind_engine as me

    torch.manual_seed(0)
    me.save_model(me.MindNet(encoder=(4, 4, 4, 4, 4), decoder=(4, 4, 4, 4, 4)), folder / "tiny.safetensors")
    rng = np.random.default_rng(seed)
    for i in range(n):
        iio.imwrite(folder / f"{i}.png", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    return rng


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread (and do not fight a busy machine for cores).
    Opt in per module: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _impls():
    from mind_engine.ops.dispatch import available

    triton_device = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: interpreted (above)
    return [
        pytest.param(("torch", "cpu"), id="torch"),
        pytest.param(("cpp", "cpu"), id="cpp-cpu"),
        pytest.param(("triton", triton_device), id="triton", marks=pytest.mark.skipif(
            importlib.util.find_spec("triton") is None, reason="Triton is not installed")),
        pytest.param(("cpp", "cuda"), id="cpp-cuda", marks=pytest.mark.skipif(
            not available("cpp", "cuda"), reason="mind_engine._C.cuda_available() is False: "
            "built without CUDA, or no CUDA device here")),
    ]


@pytest.fixture(params=_impls())
def impl_device(request):
    """(impl, device) for every implementation of a kernel op: the torch reference, C++ on the
    CPU, Triton (on the CPU through its interpreter), and the CUDA kernels where they can run."""
    return request.param


class Unpickled(Exception):
    """Raised if a test's pickle is ever unpickled: weights must load without running pickled code."""


def _boom():
    raise Unpickled("the pickle ran")


class Evil:
    """A pickle that raises ``Unpickled`` when loaded (the weights loaders must refuse it unread)."""

    def __reduce__(self):
        return _boom, ()

