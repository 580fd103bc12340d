"""`hf2vllm plan` says where the HF reference goes: a replica per GPU when it fits one, device_map across a
node's GPUs when it fits those, CPU offload with a warning when it does not (deploy/hf_reference.py)."""

from __future__ import annotations

from hf2vllm.deploy.hf_reference import hf_reference_placement

GIB = 2**30


def test_a_model_that_fits_one_gpu_gets_one_replica_per_gpu_on_ray_workers() -> None:
    advice = hf_reference_placement(weights_bytes=16 * GIB, device="gpu", device_memory_bytes=80 * GIB, gpus=8, nodes=2)
    assert advice.placement == "one_device" and advice.warning is None
    assert advice.ray_workers == 16
    assert advice.record_command == ("hf2vllm record --out REF --hf-option=device=cuda --ray-workers 16 "
                                     "--ray-address HEAD_IP:6379")


def test_a_model_over_one_gpu_is_split_across_a_nodes_gpus_one_worker_per_node() -> None:
    advice = hf_reference_placement(weights_bytes=140 * GIB, device="gpu", device_memory_bytes=80 * GIB, gpus=8, nodes=2)
    assert advice.placement == "one_node" and advice.warning is None
    assert advice.hf_options == ["device_map=auto"] and advice.ray_workers == 2 and advice.ray_worker_gpus == 8
    assert "--ray-worker-gpus 8" in advice.record_command


def test_a_model_over_a_nodes_gpus_is_offloaded_to_cpu_with_a_warning() -> None:
    advice = hf_reference_placement(weights_bytes=700 * GIB, device="gpu", device_memory_bytes=80 * GIB, gpus=8, nodes=1)
    assert advice.placement == "offload"
    assert advice.warning and "does not fit one node's GPU memory" in advice.warning
    assert advice.hf_options[0] == "device_map=auto" and advice.hf_options[1].startswith('max_memory={"0":"65536MiB"')


def test_plan_json_carries_the_hf_reference() -> None:
    from hf2vllm.deploy.plan import PlanRequest, make_plan
    from hf2vllm.models import bundled_model_path

    plan = make_plan(PlanRequest(model=str(bundled_model_path()), gpu="H100-80GB"))
    assert plan.hf_reference is not None and plan.hf_reference.placement == "one_device"
