"""Probe head files: the formats users save, and clear errors for the ones that are wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hf2vllm.errors import InputError
from hf2vllm.pooling.probe import load_probe, save_probe


def test_linear_probe_round_trips_through_safetensors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    probe = load_probe(save_probe(tmp_path / "p.safetensors", [(w, b)], labels=["a", "b", "c"]))
    x = rng.normal(size=(4, 5))
    np.testing.assert_allclose(probe.logits(x), x @ w.T + b, rtol=1e-5)
    assert probe.labels == ["a", "b", "c"] and probe.pooling == "token"


def test_torch_mlp_state_dict_is_read_in_sequential_order(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(mlp.state_dict(), tmp_path / "mlp.pt")
    probe = load_probe(tmp_path / "mlp.pt")
    x = torch.randn(5, 6)
    np.testing.assert_allclose(probe.logits(x.numpy()), mlp(x).detach().numpy(), rtol=1e-4, atol=1e-6)
    assert probe.predict(x.numpy()).tolist() == mlp(x).argmax(-1).tolist()


def test_probe_with_wrong_input_width_names_both_sizes(tmp_path: Path) -> None:
    probe = load_probe(save_probe(tmp_path / "p.safetensors", [(np.ones((1, 8)), np.zeros(1))]))
    with pytest.raises(InputError, match="expects 8-dim inputs, hidden states have 576"):
        probe.predict(np.ones((2, 576)))


def test_unusable_probe_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_probe(tmp_path / "missing.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a torch state dict"):
        load_probe(tmp_path / "junk.pt")
    from safetensors.numpy import save_file

    save_file({"0.weight": np.ones((4, 6), np.float32), "2.weight": np.ones((2, 5), np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match="do not chain"):
        load_probe(tmp_path / "bad.safetensors")
