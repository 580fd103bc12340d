"""`--hf-option max_memory=...` / `device_map=auto`: a reference split by Accelerate gives the tokens (and
logprobs) of the unsplit model on the bundled set, and says where its layers went.

A CPU-only machine has one device, so the split that a memory cap forces here is CPU and disk: the layers
over the cap are offloaded to files and loaded for each forward pass (on a GPU machine the same cap splits
GPU and CPU; docs/gpu-validation.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

CAP = {"cpu": "300MiB"}
"""Half of the bundled model's 540 MB of float32 weights: the rest goes to disk."""


@pytest.fixture(scope="module")
def split_backend(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from hf2vllm.backends.hf import HFBackend

    backend = HFBackend(bundled_model, dtype="float32", batch_size=8, max_memory=CAP,
                        offload_folder=str(tmp_path_factory.mktemp("offload")))
    yield backend
    backend.close()


def test_a_memory_cap_splits_the_model_and_the_report_names_the_placement(split_backend) -> None:  # type: ignore[no-untyped-def]
    described = split_backend.describe()
    assert set(described["placement"]) == {"cpu", "disk"}
    assert "model.embed_tokens" in described["placement"]["cpu"]
    assert any(name.startswith("model.layers.") for name in described["placement"]["disk"])
    assert described["max_memory"] == {"cpu": 300 * 2**20}


@pytest.mark.slow
def test_a_split_model_answers_the_bundled_set_as_the_unsplit_one(
    split_backend, one_process_reference: Path, scale_record: dict,  # type: ignore[no-untyped-def]
) -> None:
    from hf2vllm.backends.hf import torch_threads
    from hf2vllm.parity.diagnose import generate_fitting
    from hf2vllm.reference.store import read_manifest, read_requests
    from hf2vllm.requests import PreparedRequest
    from hf2vllm.spec import GenerationSpec

    manifest = read_manifest(one_process_reference)
    recorded = read_requests(one_process_reference, manifest.run_key)
    spec = GenerationSpec(**manifest.generation)
    requests = sorted((PreparedRequest(id=r.id, prompt_token_ids=r.prompt_token_ids, prompt_text=r.prompt_text,
                                       source=r.source) for r in recorded.values()),
                      key=lambda r: len(r.prompt_token_ids))
    size = scale_record["hf_batch_size"]
    with torch_threads(1):  # the unsplit record's thread count: the same numbers, not only the same tokens
        answers = [a for start in range(0, len(requests), size)
                   for a in generate_fitting(split_backend, requests[start : start + size], spec,
                                             manifest.max_model_len)]
    assert len(answers) == len(recorded) == 50
    assert [a.output_token_ids for a in answers] == [recorded[a.request_id].result.output_token_ids for a in answers]
    assert [a.model_dump() for a in answers] == [recorded[a.request_id].result.model_dump() for a in answers]


def test_placement_options_are_hf_load_options_checked_before_loading() -> None:
    from hf2vllm.backends.load_options import check_load_options
    from hf2vllm.backends.placement import from_pretrained_placement
    from hf2vllm.errors import InputError

    check_load_options("hf", {"device_map": "auto", "max_memory": {"0": "20GiB", "cpu": "60GiB"}}, "--hf-option")
    with pytest.raises(InputError, match="did you mean 'max_memory'"):
        check_load_options("hf", {"max_memroy": {"cpu": "1GiB"}}, "--hf-option")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        from_pretrained_placement(None, {"gpu0": "1GiB"}, None)
    with pytest.raises(InputError, match="expected a size"):
        from_pretrained_placement("auto", {"cpu": "lots"}, None)
    assert from_pretrained_placement(None, {"0": "20GiB", "cpu": 10**9}, "/tmp/off") == {
        "device_map": "auto", "max_memory": {0: "20GiB", "cpu": 10**9}, "offload_folder": "/tmp/off"}


def test_a_pooling_run_places_the_hf_model_as_asked_with_the_same_hidden_states(bundled_model: Path) -> None:
    import torch

    from hf2vllm.commands.compare_pooling import _hf_placement
    from hf2vllm.errors import InputError
    from hf2vllm.pooling.run import _load_hf_model

    placement = _hf_placement(['max_memory={"cpu": "300MiB"}'])
    with pytest.raises(InputError, match="pooling runs take only device_map"):
        _hf_placement(["attn_implementation=sdpa"])
    split = _load_hf_model(bundled_model, "float32", placement)
    assert {"cpu", "disk"} == {str(d) for d in split.hf_device_map.values()}
    whole = _load_hf_model(bundled_model, "float32")
    ids = torch.tensor([[1, 9690, 314, 253, 2379, 30]])
    assert torch.equal(split(ids, output_hidden_states=True).hidden_states[-1],
                       whole(ids, output_hidden_states=True).hidden_states[-1])
