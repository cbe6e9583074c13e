"""MindNet's shape contract and the checkpoint format."""
import json

import pytest
import torch
from safetensors.torch import save_file

from mind_engine import MindConfig, MindNet, load_model, save_model
from mind_engine.weights import CheckpointError, model_from_checkpoint

from conftest import SMALL



def test_paper_network_size_and_shape():
    net = MindNet()
    assert net.config == MindConfig()
    assert abs(sum(p.numel() for p in net.parameters()) - 4.74e6) < 0.01e6
    x = torch.rand(1, 3, 32, 64)
    assert net(x, x).shape == (1, 3, 32, 64)


def test_rejects_bad_shapes():
    net = MindNet(**SMALL)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 30, 64), torch.rand(1, 3, 30, 64))
    with pytest.raises(ValueError, match="differ in shape"):
        net(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="widths must be positive"):
        MindNet(encoder=(0, 4, 4, 4, 4))


def test_checkpoint_roundtrip_keeps_config_and_tensors(tmp_path):
    net = MindNet(**SMALL)
    path = save_model(net, tmp_path / "m.safetensors", {"steps": 3})
    back = load_model(path)
    assert back.config == net.config and not back.training
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k


def test_checkpoint_mismatch_lists_every_problem(tmp_path):
    state = MindNet(**SMALL).state_dict()
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(2)
    state["head.weight"] = torch.zeros(3, 5, 3, 3)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"config": json.dumps(MindConfig(**SMALL).to_dict())})
    with pytest.raises(CheckpointError) as e:
        model_from_checkpoint(path)
    msg = str(e.value)
    assert "missing tensor head.bias" in msg and "unexpected tensor extra.weight" in msg
    assert "head.weight: checkpoint has shape (3, 5, 3, 3)" in msg


def test_checkpoint_without_config_or_not_safetensors(tmp_path):
    path = tmp_path / "noconf.safetensors"
    save_file({"a": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="no mind_engine configuration"):
        model_from_checkpoint(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        model_from_checkpoint(junk)
    with pytest.raises(FileNotFoundError):
        model_from_checkpoint(tmp_path / "absent.safetensors")


def test_default_model_absent_is_an_error_not_a_random_model(monkeypatch, tmp_path):
    from mind_engine import weights

    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", tmp_path / "none.safetensors")
    weights._default_model.cache_clear()
    with pytest.raises(FileNotFoundError, match="ships no trained default model"):
        load_model()
    weights._default_model.cache_clear()
