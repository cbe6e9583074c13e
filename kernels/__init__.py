"""The Triton kernels of the fused ops (``mind_engine.ops``), one module per op.

This top-level folder ships as the subpackage ``mind_engine.kernels`` (setup.py maps it with
``package_dir``, in wheels and editable installs alike); the references they compute are in
``mind_engine/ops/_torch_impl.py``.

Importing this package never needs Triton (an optional extra); the kernel modules import it.
"""
import importlib.util


def triton_installed() -> bool:
    """True when Triton can be imported, so that the kernel modules can be."""
    return importlib.util.find_spec("triton") is not None
