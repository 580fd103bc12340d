"""Every ``hf2vllm compare`` option checked before anything loads.

A comparison loads two models and runs for minutes, so nothing the user typed may turn out wrong after
that has started: ``check_compare_options`` runs first in the command and raises one ``InputError`` line
naming the option (or ``file:line``), the bad value and the fix. It reads files (prompts, configs,
images) but loads no model, tokenizer or engine; Transformers is imported only to check image settings
against the installed image processor's own list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf2vllm import checks
from hf2vllm.errors import InputError

NORMALISE = ("auto", "off", "on", "default")
SIDES = ("hf", "vllm")

# Options of the generation path that a pooling/LoRA run ignores, with the value meaning "not given".
_GENERATE_ONLY = {
    "hf_kwargs": None, "generation_config": None, "hf_option": [], "vllm_option": [], "no_chat_template": None,
    "vllm_tokenize": False, "hf_generate": False, "mm_processor_kwargs": None, "vllm_mm_processor_kwargs": None,
    "server": None, "min_exact_match": None, "only_mismatches": False, "vllm_batch_size": None,
    "gate": "worst-group", "group_by": None,
}
_POOLING_ONLY = {"quantization": None, "vllm_normalise": "auto", "min_cosine": 0.999, "probe": None,
                 "vllm_model": None}
_SERVER_ONLY = {"served_model": None, "api_key_env": None, "journal": None, "resume": False, "stream": False,
                "requests_per_minute": None, "tokens_per_minute": None}
_RAY_ONLY = {"ray_address": None, "ray_worker_cpus": 1, "ray_worker_gpus": None, "reference_dir": None}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_compare_options(o: dict[str, Any]) -> None:
    """Refuse any bad ``compare`` option (``o``: the command's parameters by name) before work starts."""
    checks.api_key_env(o["api_key_env"])  # first: a pasted key is refused before anything could echo it
    recorded_model = _check_against(o) if o.get("against") is not None else None
    _check_names(o)
    _check_numbers(o)
    _check_combinations(o)
    _check_ray(o)
    _check_paths(o)
    model_path, model_config = _check_model(o["model"] or recorded_model, "--model")
    if o["vllm_model"] is not None:
        _check_model(o["vllm_model"], "--vllm-model")
    vision = "vision_config" in model_config
    if o["prompts"] is not None:
        _check_prompts(Path(o["prompts"]), model_path, vision)
    _check_context(o, model_path, model_config)
    hf_kwargs = checks.json_object(o["hf_kwargs"], "--hf-kwargs", example='{"max_new_tokens": 32}')
    if hf_kwargs is not None:
        check_greedy(hf_kwargs, "--hf-kwargs")
    if o["generation_config"] is not None:
        from hf2vllm.translation import read_generation_config

        read_generation_config(o["generation_config"], "--generation-config")
    _check_side_options(o)
    _check_image_settings(o, model_path, vision)
    _check_grouping(o)


def _check_names(o: dict[str, Any]) -> None:
    from hf2vllm.commands.compare_pooling import TASKS
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.server.compare_sides import BACKEND_KINDS

    checks.choice(o["task"], "--task", TASKS)
    checks.choice(o["vllm_normalise"], "--vllm-normalise", NORMALISE)
    checks.choice(o["reference"], "--reference", BACKEND_KINDS)
    checks.choice(o["candidate"], "--candidate", BACKEND_KINDS)
    checks.choice(o["no_chat_template"], "--no-chat-template", SIDES)
    try:
        if o["dtype"] is not None:
            normalise_dtype(o["dtype"])
    except InputError as err:
        raise InputError(f"--dtype: {err}") from None
    if o["quantization"] is not None:
        from hf2vllm.deploy.vllm_names import quantization_methods

        checks.choice(o["quantization"], "--quantization", quantization_methods())


def _check_numbers(o: dict[str, Any]) -> None:
    checks.number(o["max_model_len"], "--max-model-len", minimum=1,
                  meaning="tokens of context; leave it out to use the model's own")
    checks.positive(o["kv_cache_gib"], "--kv-cache-gib", "GiB of KV cache; leave it out for the default")
    checks.number(o["min_cosine"], "--min-cosine", minimum=-1.0, maximum=1.0, meaning="a cosine similarity")
    checks.positive(o["request_timeout"], "--request-timeout", "seconds per attempt")
    checks.positive(o["requests_per_minute"], "--requests-per-minute", "leave it out for no limit")
    checks.positive(o["tokens_per_minute"], "--tokens-per-minute", "leave it out for no limit")
    vllm_sides = [s for s in _sides(o) if s == "vllm"]
    if vllm_sides and o["logprobs"] is not None and o["task"] == "generate":
        from hf2vllm.backends.load_options import vllm_max_logprobs_default

        limit = vllm_max_logprobs_default()
        raised = any(a.replace("-", "_").startswith("max_logprobs=") for a in o["vllm_option"])
        if o["logprobs"] > limit and not raised:
            raise InputError(f"--logprobs {o['logprobs']}: vLLM returns at most {limit} logprobs per token by "
                             f"default; pass --logprobs {limit} or less, or raise it with --vllm-option "
                             f"max_logprobs={o['logprobs']}")


def _sides(o: dict[str, Any]) -> tuple[str, str]:
    from hf2vllm.server.compare_sides import resolve_sides

    return resolve_sides(o["reference"], o["candidate"], o["server"])


def _given(o: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    return [flag(k) for k, default in defaults.items() if o[k] != default and o[k] is not None]


def is_pooling_run(o: Mapping[str, Any]) -> bool:
    """Whether these compare options ask for the pooling/LoRA/probe comparison rather than generation (a
    separate --vllm-model is a pooling run unless it is the candidate against a record)."""
    return bool(o["task"] != "generate" or o["lora"] or o["probe"] or (o["vllm_model"] and o.get("against") is None))


def _check_combinations(o: dict[str, Any]) -> None:
    if is_pooling_run(o):
        # Where the HF model's layers go applies to pooling runs too (docs/scale.md); nothing else of --hf-option.
        from hf2vllm.commands.compare_pooling import PLACEMENT_KEYS

        placement = all(a.partition("=")[0].strip().replace("-", "_") in PLACEMENT_KEYS for a in o["hf_option"])
        stray = [s for s in _given(o, _GENERATE_ONLY) if not (s == "--hf-option" and placement)]
        if stray:
            what = f"--task {o['task']}" if o["task"] != "generate" else "--lora"
            raise InputError(f"{stray[0]} does not apply to {what} (the pooling/LoRA comparison ignores it); "
                             "leave it out")
        if o["task"] == "generate" and (o["probe"] or o["vllm_model"]):
            which = "--probe" if o["probe"] else "--vllm-model"
            raise InputError(f"{which} needs --task hidden-states or --task embed")
        return
    stray = _given(o, {k: v for k, v in _POOLING_ONLY.items() if not (k == "vllm_model" and o.get("against"))})
    if stray:
        raise InputError(f"{stray[0]} applies to --task hidden-states or --task embed only; leave it out or "
                         "add --task hidden-states")
    sides = _sides(o)
    if "server" not in sides:
        stray = _given(o, _SERVER_ONLY)
        if stray:
            raise InputError(f"{stray[0]} is for a server side; add --server URL (or leave {stray[0]} out)")
    if "server" in sides:
        from hf2vllm.server.compare_sides import server_options

        server_options(o["server"], journal=str(o["journal"]) if o["journal"] else None, resume=o["resume"])
    for name, kind in (("hf_option", "hf"), ("vllm_option", "vllm")):
        served = kind == "vllm" and "server" in sides  # a vLLM server takes the per-request settings
        if o[name] and kind not in sides and not served:
            raise InputError(f"{flag(name)}: no {kind} side in this comparison ({sides[0]} vs {sides[1]})")
    if o["no_chat_template"] and o["no_chat_template"] not in sides:
        raise InputError(f"--no-chat-template {o['no_chat_template']}: no {o['no_chat_template']} side in this "
                         f"comparison ({sides[0]} vs {sides[1]})")
    if o["vllm_tokenize"] and "vllm" not in sides:
        raise InputError(f"--vllm-tokenize: no vllm side in this comparison ({sides[0]} vs {sides[1]})")


def _check_ray(o: dict[str, Any]) -> None:
    """``--ray-workers N``: the HF reference is recorded on Ray workers, then the candidate is checked against
    that record (as ``--against``). So the reference side must be HF with the run's own settings: HF-only
    generation, prompt or dtype differences have no place in a record that the candidate must match."""
    if not o["ray_workers"]:
        stray = _given(o, _RAY_ONLY)
        if stray:
            raise InputError(f"{stray[0]}: give --ray-workers N too (the HF reference goes on Ray workers only then)")
        return
    checks.number(o["ray_workers"], "--ray-workers", minimum=1)
    checks.number(o["ray_worker_cpus"], "--ray-worker-cpus", minimum=0, exclusive_minimum=True)
    checks.number(o["ray_worker_gpus"], "--ray-worker-gpus", minimum=0)
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # without importing it: checks stay fast
        from hf2vllm.reference.ray_workers import MISSING

        raise InputError(MISSING)
    if is_pooling_run(o):
        raise InputError("--ray-workers records a generation reference; pooling, LoRA and probe runs take no Ray "
                         "workers (leave --ray-workers out)")
    if o.get("against") is not None:
        raise InputError("--ray-workers with --against: --against reads a recorded reference, --ray-workers records "
                         "one; give one of them")
    sides = _sides(o)
    if sides[0] != "hf" or sides[1] == "hf":
        raise InputError(f"--ray-workers puts the HF reference on Ray workers: compare hf (reference) with vllm or a "
                         f"server, not {sides[0]} with {sides[1]}")
    if not o["logprobs"]:
        raise InputError("--logprobs 0 with --ray-workers: the recorded reference keeps top-k logprobs for the "
                         "verdicts; give --logprobs 1 or more")
    if o["no_chat_template"] == "hf":
        raise InputError("--no-chat-template hf with --ray-workers: the reference on Ray is recorded with the run's "
                         "own prompts, which the candidate must match; compare a per-side template without --ray-workers")
    from hf2vllm.parity.overrides import apply_side_options
    from hf2vllm.parity.run import BackendChoice
    from hf2vllm.requests import PromptOptions

    side = apply_side_options(BackendChoice(kind="hf"), o["hf_option"], "--hf-option")
    defaults = PromptOptions().model_dump()
    prompt = [k for k, v in side.prompt.model_dump().items() if v != defaults[k]]
    differing = [*side.generation, *side.decode, *prompt, *(["dtype"] if "dtype" in side.options else [])]
    if differing:
        raise InputError(f"--hf-option {differing[0]} with --ray-workers: the reference on Ray is recorded with the "
                         "run's own settings, which the candidate must match; HF-only differences need a compare "
                         "without --ray-workers (load options such as device=cuda or device_map=auto are fine)")
    checks.output_dir(o["reference_dir"], "--reference-dir")


def _check_paths(o: dict[str, Any]) -> None:
    checks.output_dir(o["out"], "--out")
    if o["journal"] is not None:
        checks.output_file(o["journal"], "--journal")
    if o["probe"] is not None:
        checks.input_file(o["probe"], "--probe", what="probe file")
        _check_probe(Path(o["probe"]))
    if o["lora"] is not None:
        lora = Path(o["lora"])
        if not lora.exists():
            raise InputError(f"--lora {lora}: no such directory (give a PEFT adapter directory)")
        if not lora.is_dir():
            raise InputError(f"--lora {lora}: is a file; give the PEFT adapter directory holding "
                             "adapter_config.json")
        from hf2vllm.pooling.lora import read_adapter_config

        read_adapter_config(lora)


def _check_probe(path: Path) -> None:
    if path.suffix != ".safetensors":
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np"):
            pass
    except (SafetensorError, OSError) as err:
        raise InputError(f"--probe {path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None


def _check_against(o: dict[str, Any]) -> str | None:
    """``--against REF``: a readable record, and nothing that would change the recorded reference side.
    Returns the record's model path when it is here (the default --model)."""
    from hf2vllm.reference.store import read_manifest

    try:
        manifest = read_manifest(Path(o["against"]))
    except InputError as err:
        raise InputError(f"--against: {err}") from None
    if not manifest.complete:
        raise InputError(f"--against {o['against']}: the record is incomplete; finish it with `hf2vllm record "
                         f"--out {o['against']} --resume` and the options it was started with")
    if o["reference"] != "hf":
        raise InputError(f"--reference {o['reference']} with --against: the record is the reference; leave --reference out")
    if o["candidate"] == "hf":
        raise InputError("--candidate hf with --against: the record is the HF reference; check vllm or a server")
    refused = {"--hf-generate": o["hf_generate"], "--hf-option": bool(o["hf_option"]),
               "--no-chat-template hf": o["no_chat_template"] == "hf", "--hf-kwargs": o["hf_kwargs"] is not None,
               "--generation-config": o["generation_config"] is not None}
    for name, given in refused.items():
        if given:
            raise InputError(f"{name} with --against: the reference side and its settings are the recorded ones "
                             f"(record again to change them; candidate-only changes go in --vllm-option)")
    return manifest.model.path if Path(manifest.model.path).is_dir() and o["model"] is None else None


def _check_model(model: str | None, option: str) -> tuple[Path, dict[str, Any]]:
    from hf2vllm.models import resolve_model

    path = resolve_model(model)
    return path, checks.model_config(path, option)


def _check_prompts(path: Path, model_path: Path, vision: bool) -> None:
    from hf2vllm.requests import check_text_only, load_requests

    checks.input_file(path, "--prompts", what="prompt file")
    requests = load_requests(path)
    if not vision:
        check_text_only(requests, model_path)
        return
    from hf2vllm.multimodal.images import check_request_images

    check_request_images(requests, path.parent, str(path))


def _check_context(o: dict[str, Any], model_path: Path, config: dict[str, Any]) -> None:
    """vLLM refuses a max_model_len beyond the model's declared context (unless told to allow it)."""
    length = o["max_model_len"]
    if length is None or o["task"] != "generate" or "vllm" not in _sides(o):
        return
    if os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") or config.get("rope_scaling"):
        return
    from hf2vllm.parity.run import model_context_length

    declared = model_context_length(model_path)
    if declared is not None and length > declared:
        raise InputError(f"--max-model-len {length}: the model's context is {declared} tokens "
                         "(max_position_embeddings in its config.json) and vLLM refuses more; pass "
                         f"--max-model-len {declared} or less")


def check_greedy(settings: dict[str, Any], option: str) -> None:
    """compare checks token-by-token parity, which only greedy decoding has."""
    if settings.get("do_sample") is True:
        raise InputError(
            f"{option} do_sample=true: compare checks token-by-token parity, and two samplers never draw the "
            "same tokens (the differences would be blamed on batch effects); drop do_sample (greedy) to "
            "compare, and use `hf2vllm translate --hf ...` for the exact SamplingParams of your sampling settings"
        )


def _check_side_options(o: dict[str, Any]) -> None:
    """--hf-option/--vllm-option: the values through the real parser (``parity.overrides``), then every load
    key against what that backend takes (vLLM: its ``EngineArgs``), with the closest known name."""
    from hf2vllm.backends.load_options import check_load_options
    from hf2vllm.parity.overrides import DECODE_KEYS, apply_side_options, parse_assignment
    from hf2vllm.parity.run import BackendChoice
    from hf2vllm.requests import PromptOptions
    from hf2vllm.spec import GenerationSpec

    routed = [*GenerationSpec.model_fields, *PromptOptions.model_fields, *DECODE_KEYS]
    for name, kind in (("hf_option", "hf"), ("vllm_option", "vllm")):
        option = flag(name)
        if not o[name]:
            continue
        load: dict[str, Any] = {}
        for text in o[name]:
            key, value = parse_assignment(text, option)
            if key == "do_sample" and value is True:
                check_greedy({"do_sample": True}, option)
            if key not in routed:
                load[key] = value
        check_load_options(kind, load, option, also=routed)
        try:
            apply_side_options(BackendChoice(kind=kind), o[name], option)
        except InputError as err:
            message = str(err)
            raise InputError(message if message.startswith(option) else f"{option} {message}") from None


def _check_grouping(o: dict[str, Any]) -> None:
    """--gate is one of the gates and gates something; --group-by names a key some request carries
    (``parity.groups.group_key``, the rule the run applies)."""
    from hf2vllm.parity.groups import GATES, group_key

    checks.choice(o["gate"], "--gate", GATES)
    if o["gate"] != "worst-group" and o["min_exact_match"] is None:
        raise InputError(f"--gate {o['gate']}: there is nothing to gate without --min-exact-match; add "
                         "--min-exact-match RATE or leave --gate out")
    if o["group_by"] is None or o["task"] != "generate":
        return
    from hf2vllm.requests import bundled_prompts_path, load_requests

    requests = load_requests(Path(o["prompts"]) if o["prompts"] is not None else bundled_prompts_path())
    group_key(o["group_by"], [r.metadata for r in requests[: o["limit"]]])


def _check_image_settings(o: dict[str, Any], model_path: Path, vision: bool) -> None:
    given = [(k, o[k]) for k in ("mm_processor_kwargs", "vllm_mm_processor_kwargs") if o[k] is not None]
    if not given:
        return
    parsed = {k: checks.json_object(v, flag(k), example='{"size": {"longest_edge": 128}}') for k, v in given}
    if not vision:
        raise InputError(f"{flag(given[0][0])}: the model {model_path} is text-only (no vision_config in its "
                         "config.json); image settings are for vision-language models")
    from hf2vllm.multimodal.prepare import check_processor_kwargs, load_image_processor

    processor = load_image_processor(model_path)
    for key, value in parsed.items():
        check_processor_kwargs(processor, value, flag(key))

