"""Test-session setup: without a CUDA device the Triton kernels run in Triton's CPU interpreter.

TRITON_INTERPRET is read when a kernel is decorated, so it must be set before any kernel module
is imported; conftest.py is loaded before the test modules are collected.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread (and do not fight a busy machine for cores).
    Opt in per module: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
