"""The plan: parallelism with reasons, scheduler limits, the serve command and YAML, clear errors."""

from __future__ import annotations

import json

import pytest
import yaml

from hf2vllm.deploy.plan import PlanRequest, make_plan
from hf2vllm.deploy.presets import PRESETS, build_preset
from hf2vllm.errors import InputError

JSON_KEYS = {
    "weights_bytes", "kv_cache_bytes_per_token", "kv_cache_tokens", "max_concurrency",
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "max_num_seqs",
    "vllm_serve_command",
}


def test_plan_json_has_the_documented_keys_and_consistent_numbers(deploy_cli, configs_dir):
    result = deploy_cli("plan", str(configs_dir / "llama-3-8b.json"), "--gpu", "H100-80GB", "--gpus", "8",
                        "--max-model-len", "8192", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert JSON_KEYS <= plan.keys()
    assert plan["kv_cache_bytes_per_token"] == 131072
    assert plan["kv_cache_tokens"] == int(plan["max_concurrency"] * plan["max_model_len"])
    assert plan["vllm_serve_command"].startswith("vllm serve ")
    assert f"--max-num-seqs {plan['max_num_seqs']}" in plan["vllm_serve_command"]


def test_small_model_on_many_gpus_gets_data_parallel_not_tensor_parallel(configs_dir):
    plan = make_plan(PlanRequest(model=str(configs_dir / "qwen2.5-0.5b.json"), gpu="H100-80GB", gpus=8))
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.data_parallel_size) == (1, 1, 8)
    assert "data parallel 8" in plan.parallelism_reason


def test_model_too_big_for_one_gpu_gets_tensor_parallel_inside_the_node(configs_dir):
    plan = make_plan(PlanRequest(model=str(configs_dir / "mixtral-8x7b-v0.1.json"), gpu="H100-80GB", gpus=8,
                                 max_model_len=8192))
    assert plan.tensor_parallel_size == 2 and plan.data_parallel_size == 4
    assert "tensor parallel 2" in plan.parallelism_reason
    assert plan.weights_per_rank_bytes * 2 >= plan.weights_bytes


def test_multi_node_uses_pipeline_parallel_over_ray(configs_dir):
    plan = make_plan(PlanRequest(model=str(configs_dir / "deepseek-r1.json"), gpu="H100-80GB", gpus=8, nodes=2,
                                 max_model_len=16384))
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size) == (8, 2)
    assert "--distributed-executor-backend ray" in plan.vllm_serve_command
    assert any("ray start --head" in c for c in plan.ray_commands)
    assert any("ray start --address=" in c for c in plan.ray_commands)
    assert plan.reasoning_parser == "deepseek_r1"


def test_yaml_config_says_what_the_command_says(configs_dir):
    plan = make_plan(PlanRequest(model=str(configs_dir / "gemma-3-12b.json"), gpu="L40S", gpus=2,
                                 max_model_len=16384, images_per_prompt=2))
    config = yaml.safe_load(plan.yaml_config)
    args = plan.vllm_serve_args
    for flag in ("max-num-seqs", "max-num-batched-tokens", "tensor-parallel-size", "data-parallel-size", "block-size"):
        assert str(config[flag]) == args[args.index(f"--{flag}") + 1]
    assert config["limit-mm-per-prompt"] == {"image": 2} == plan.limit_mm_per_prompt
    assert plan.max_num_batched_tokens >= 2 * plan.mm_tokens_per_image == 512


def test_reasoning_family_gets_its_parser(configs_dir):
    plan = make_plan(PlanRequest(model=str(configs_dir / "qwen3-8b-base.json"), gpu="L4", max_model_len=4096))
    assert plan.reasoning_parser == "qwen3" and "--reasoning-parser qwen3" in plan.vllm_serve_command
    llama = make_plan(PlanRequest(model=str(configs_dir / "llama-3-8b.json"), gpu="H100-80GB", max_model_len=4096))
    assert llama.reasoning_parser is None


def test_goal_changes_max_num_seqs_in_the_expected_direction(configs_dir):
    base = dict(model=str(configs_dir / "llama-3-8b.json"), gpu="H100-80GB", max_model_len=8192, concurrency=16)
    throughput = make_plan(PlanRequest(goal="throughput", **base))
    latency = make_plan(PlanRequest(goal="latency", **base))
    assert latency.max_num_seqs == 16 < throughput.max_num_seqs
    assert throughput.max_num_seqs <= throughput.requests_in_kv_at_typical_length
    assert latency.max_num_batched_tokens < throughput.max_num_batched_tokens


def test_presets_are_derived_from_the_plan_for_each_model(configs_dir):
    small = build_preset("high-throughput", PlanRequest(model=str(configs_dir / "qwen2.5-0.5b.json"), gpu="L4"))
    large = build_preset("high-throughput", PlanRequest(model=str(configs_dir / "llama-3-8b.json"), gpu="L4"))
    assert small.plan.max_num_seqs > large.plan.max_num_seqs
    debug = build_preset("debug", PlanRequest(model=str(configs_dir / "llama-3-8b.json"), gpu="L4"))
    assert "--enforce-eager" in debug.plan.vllm_serve_args and debug.plan.max_model_len == 2048
    memory = build_preset("memory-constrained", PlanRequest(model=str(configs_dir / "llama-3-8b.json"), gpu="L4"))
    assert memory.plan.kv_cache_bytes_per_token == 65536  # fp8 KV halves bf16's 131072
    with pytest.raises(InputError, match="not a vision-language model"):
        build_preset("vision-language", PlanRequest(model=str(configs_dir / "llama-3-8b.json"), gpu="L4"))
    assert set(PRESETS) == {"high-throughput", "balanced", "low-latency", "debug", "long-context",
                            "memory-constrained", "vision-language", "reasoning"}


def test_model_too_big_for_the_hardware_is_a_clear_error(deploy_cli, configs_dir):
    result = deploy_cli("plan", str(configs_dir / "deepseek-r1.json"), "--gpu", "L4", "--gpus", "4", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("error: deepseek-r1: weights") and "do not fit" in line and "\n" not in line


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"layer_types": ["linear_attention", "full_attention"] * 18}, "layer_types[0] is 'linear_attention'"),
        ({"attn_type_list": [0, 1] * 18}, "`attn_type_list` describes an attention layout"),
    ],
)
def test_unknown_attention_layout_is_refused_not_guessed(edit, message, configs_dir, tmp_path):
    config = json.loads((configs_dir / "qwen3-8b-base.json").read_text())
    config.update(edit)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_plan(PlanRequest(model=str(tmp_path), gpu="H100-80GB"))


def test_unreadable_config_names_file_and_line(deploy_cli, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}')
    result = deploy_cli("plan", str(bad), "--gpu", "L4")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}:3: not valid JSON (Expecting property name enclosed in double quotes)"
