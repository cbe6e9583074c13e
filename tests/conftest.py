"""Test-session setup: without a CUDA device the Triton kernels run in Triton's CPU interpreter.

TRITON_INTERPRET is read when a kernel is decorated, so it must be set before any kernel module
is imported; conftest.py is loaded before the test modules are collected.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
