"""One device rule everywhere, and no side effects on the caller's model or on the shared
default model."""
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import checks, weights

from conftest import SMALL

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)


@pytest.fixture
def tiny_default(tmp_path, monkeypatch):
    """The bundled default model replaced by a tiny one (the real one is not needed here)."""
    torch.manual_seed(0)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", me.save_model(me.MindNet(**SMALL), tmp_path / "d.safetensors"))
    weights._default_model.cache_clear()
    yield
    weights._default_model.cache_clear()


def test_the_default_device_is_cuda_when_available_else_cpu(monkeypatch, tiny_default):
    assert checks.default_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert checks.check_device(None) == torch.device("cpu")
    assert next(me.load_model().parameters()).device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert checks.default_device() == torch.device("cuda")


def test_the_caller_s_model_is_never_changed(pair):
    torch.manual_seed(0)
    net = me.MindNet(**SMALL).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ref = me.match(*pair, stride=10, model=net.eval(), tier="t1")
    net.train()
    for call in (lambda: me.match(*pair, stride=10, model=net, tier="t1"),
                 lambda: me.interpolate(*pair, model=net),
                 lambda: me.jacobian_rows(net, *pair, [[3, 4]], device="cpu")):
        out = call()
        assert net.training, "the caller's model was switched to eval"
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
        assert not any(net._forward_hooks for net in net.modules())
    np.testing.assert_array_equal(me.match(*pair, stride=10, model=net, tier="t1").pts1, ref.pts1)
    assert out[0].shape == (1, 3, 32, 40)


def test_an_eval_model_on_its_device_is_used_without_a_copy(pair):
    from mind_engine.weights import resolve_model

    net = me.MindNet(**SMALL).eval()
    assert resolve_model(net, None)[0] is net
    assert resolve_model(net.train(), "cpu")[0] is not net and net.training
    with pytest.raises(TypeError, match="model must be a MindNet"):
        resolve_model(torch.nn.Linear(2, 2), None)


def test_load_model_gives_each_caller_its_own_copy(tiny_default, pair):
    a = me.load_model(device="cpu")
    ref = me.match(*pair, stride=10, device="cpu")
    with torch.no_grad():
        a.head.weight.mul_(-3)
    a.train()
    b = me.load_model(device="cpu")
    assert not torch.equal(a.head.weight, b.head.weight) and not b.training
    np.testing.assert_array_equal(me.match(*pair, stride=10, device="cpu").pts1, ref.pts1)
    assert all(p.requires_grad for p in b.parameters())  # an ordinary model, trainable
    shared = weights.default_model("cpu")
    assert not any(p.requires_grad for p in shared.parameters())
