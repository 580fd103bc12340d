"""The Python API: one typed entry point per job. The commands are thin shells over these functions
(they parse, print and choose the exit code); everything else happens here.

Usage::

    import hf2vllm

    report = hf2vllm.compare(limit=4, max_new_tokens=16)        # bundled model and prompts, HF vs vLLM
    print(report.summary.exact_match_rate, report.summary.verdicts)

    translation = hf2vllm.translate({"max_new_tokens": 32, "do_sample": True}, model="smollm2-135m")
    translation.vllm                                             # kwargs for vllm.SamplingParams

Every argument is checked before any model loads, by the same checks as the command line, so a bad
one raises one ``InputError`` whose message names the matching command-line option (``--max-model-len``
for ``max_model_len``). Heavy libraries (torch, Transformers, vLLM) are imported only when a function
runs: ``import hf2vllm`` stays fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf2vllm.errors import InputError
from hf2vllm.options import JsonObject, SideOptions, json_object_option, per_side_choices, side_assignments

if TYPE_CHECKING:
    from hf2vllm.backends.base import Backend
    from hf2vllm.parity.run import CompareOptions, ProgressFactory
    from hf2vllm.report.schema import CompareReport
    from hf2vllm.translation import Translation

# Values of the command's options that the generation comparison does not take (pooling, LoRA and
# printing), as "not given": the option checks read every option by name.
_NOT_GENERATION = {
    "task": "generate", "probe": None, "lora": None, "vllm_normalise": "auto", "min_cosine": 0.999,
    "quantization": None, "min_exact_match": None, "gate": "worst-group", "only_mismatches": False,
    "verbose": False,
}


def compare(
    model: str | Path | None = None,
    prompts: str | Path | None = None,
    *,
    against: str | Path | None = None,
    # -- generation
    max_new_tokens: int | None = None,
    hf_kwargs: JsonObject | None = None,
    generation_config: str | Path | None = None,
    dtype: str | None = None,
    limit: int | None = None,
    max_model_len: int | None = None,
    logprobs: int | None = 5,
    # -- verdicts
    explain: bool = True,
    hf_generate: bool = False,
    calibration_requests: int = 16,
    group_by: str | None = None,
    # -- which two sides
    reference: str = "hf",
    candidate: str | None = None,
    # -- per-side differences (the "what if" of one side)
    hf_options: SideOptions | None = None,
    vllm_options: SideOptions | None = None,
    no_chat_template: str | None = None,
    vllm_tokenize: bool = False,
    mm_processor_kwargs: JsonObject | None = None,
    vllm_mm_processor_kwargs: JsonObject | None = None,
    # -- HF side
    hf_batch_size: int = 32,
    hf_batch_tokens: int = 16384,
    ray_workers: int | None = None,
    ray_address: str | None = None,
    ray_worker_cpus: float = 1,
    ray_worker_gpus: float | None = None,
    reference_dir: str | Path | None = None,
    # -- vLLM side
    vllm_batch_size: int | None = None,
    kv_cache_gib: float | None = None,
    vllm_model: str | Path | None = None,
    # -- server side
    server: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 64,
    stream: bool = False,
    journal: str | Path | None = None,
    resume: bool = False,
    request_timeout: float = 120.0,
    max_retries: int = 6,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    # -- output
    out: str | Path | None = None,
    # -- in-process hooks
    backends: Mapping[str, Backend] | None = None,
    progress: ProgressFactory | None = None,
    on_status: Callable[[str], None] | None = None,
) -> CompareReport:
    """Greedy-decode every prompt on the candidate (vLLM) and check the reference (HF) reproduces it,
    token by token; return the report (``report.summary``, ``report.requests[i].verdict``...).

    ``model``: checkpoint dir or cached name (default: the bundled smollm2-135m); ``prompts``: JSONL
    file (default: the bundled set of 50). ``hf_kwargs``: your ``generate()`` kwargs (a dict, or JSON
    text / ``@file.json``), resolved as Transformers would and run on both sides; it replaces
    ``max_new_tokens``, greedy only. ``reference``/``candidate``: ``hf``, ``vllm`` or ``server``
    (``server`` needs ``server=URL``; ``server=`` alone makes the candidate the server).
    ``hf_options``/``vllm_options``: one side's deliberate differences, ``{"repetition_penalty": 1.3}``
    or ``["repetition_penalty=1.3"]`` (load, generation, prompt or decode settings). ``out``: a directory
    to write ``report.json`` and ``report.html`` to. ``backends``: already-loaded backends to reuse,
    ``{"reference": ..., "candidate": ...}`` (not closed). ``progress``/``on_status``: callbacks for
    progress bars and status lines. ``group_by``: the prompt-file metadata key the verdicts are grouped
    by (``report.groups``; default: ``domain`` when any request has it).

    ``against``: a reference directory written by ``record()``; the reference side is read from it (no HF
    model loads) and the run must be the recorded one (model, tokenizer, template, prompts, settings;
    ``max_new_tokens``/``dtype`` default to the recorded ones), else ``ReferenceMismatchError`` names what
    differs. ``vllm_model``: with ``against``, a deliberately different candidate checkpoint (a quantised
    copy); ``report.reference_record.candidate_model_differs`` then says so.

    ``ray_workers``: the HF reference runs as N replicas on a Ray cluster (``ray_address``, default a local
    one; needs the ``ray`` extra): it is recorded into ``reference_dir`` (default ``OUT/reference``, else a
    temporary folder) as ``record()`` does, resuming what a stopped run left there, and the candidate is then
    checked against that record (``report.reference_record.recorded_by_this_run``).

    Raises ``InputError`` (a bad argument, before anything loads) and other ``HF2VLLMError``s; the
    report is returned whatever the agreement: gate it with ``hf2vllm.parity.groups.check_gate`` (the
    command's ``--min-exact-match``/``--gate``) or ``hf2vllm.testing.assert_parity``.
    """
    values = dict(locals())
    _check_compare(values)
    from hf2vllm.parity.run import run_compare

    with _reference_on_ray(values, progress, on_status) as run:
        options = _compare_options(run)
        report = run_compare(options, backends=dict(backends) if backends else None, progress=progress,
                             on_status=on_status)
        if ray_workers and report.reference_record is not None:
            kept = run["reference_dir"] is not None or out is not None
            report.reference_record = report.reference_record.model_copy(
                update={"recorded_by_this_run": True, "kept": kept})
    if out is not None:
        from hf2vllm.report.html import write_html
        from hf2vllm.report.json_file import write_report

        write_report(report, Path(out))
        write_html(report, Path(out))
    return report


def _check_compare(values: dict[str, Any]) -> None:
    """Every argument, before anything loads: numbers the command line's parser bounds, then the
    command's own checks (``commands.compare_checks``), then whether the server answers."""
    from hf2vllm import checks
    from hf2vllm.commands.compare_checks import check_compare_options

    for name, minimum in (("max_new_tokens", 1), ("limit", 1), ("hf_batch_size", 1), ("hf_batch_tokens", 1),
                          ("vllm_batch_size", 1), ("calibration_requests", 1), ("concurrency", 1),
                          ("logprobs", 0), ("max_retries", 0)):
        checks.number(values[name], "--" + name.replace("_", "-"), minimum=minimum)
    check_compare_options({
        **_NOT_GENERATION, **values,
        "hf_option": side_assignments(values["hf_options"]), "vllm_option": side_assignments(values["vllm_options"]),
    })
    server, api_key_env = values["server"], values["api_key_env"]
    if server is not None:
        checks.server_url(server, "--server", api_key_env=api_key_env)
        from hf2vllm.server.client import ClientConfig
        from hf2vllm.server.diagnostics import list_models

        # Reachable, authorised and serving, before seconds of imports and minutes of the other side.
        list_models(ClientConfig(base_url=server, api_key_env=api_key_env))


@contextmanager
def _reference_on_ray(
    v: dict[str, Any], progress: ProgressFactory | None, on_status: Callable[[str], None] | None,
) -> Iterator[dict[str, Any]]:
    """The compare arguments to run: ``v`` itself, or with ``ray_workers`` those of a compare against the HF
    reference recorded here on Ray workers (reference/ray_workers.py: the same answers as one process).

    The record goes to ``reference_dir``, else ``OUT/reference``, else a temporary folder removed on exit.
    A kept folder is resumed: a run that died keeps every batch that arrived, and the same command again
    records only the rest (a complete record of the same inputs is reused as it is)."""
    if not v["ray_workers"]:
        yield v
        return
    from hf2vllm.reference.record import RecordInputsChangedError, record

    with ExitStack() as stack:
        folder = v["reference_dir"] or (Path(v["out"]) / "reference" if v["out"] is not None else None)
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hf2vllm-ray-"))) / "reference"
        try:
            record(
                folder, v["model"], v["prompts"], max_new_tokens=v["max_new_tokens"] or 64, hf_kwargs=v["hf_kwargs"],
                generation_config=v["generation_config"], dtype=v["dtype"] or "float32", limit=v["limit"],
                max_model_len=v["max_model_len"], logprobs=v["logprobs"], hf_options=v["hf_options"],
                hf_batch_size=v["hf_batch_size"], hf_batch_tokens=v["hf_batch_tokens"],
                calibration_requests=v["calibration_requests"], resume=True, ray_workers=v["ray_workers"],
                ray_address=v["ray_address"], ray_worker_cpus=v["ray_worker_cpus"],
                ray_worker_gpus=v["ray_worker_gpus"], progress=progress, on_status=on_status,
            )
        except RecordInputsChangedError as err:
            option = "--reference-dir" if v["reference_dir"] else "--out"
            raise InputError(f"{option}: {err.out} holds a reference recorded with other inputs ({err.differences}); "
                             "give another --reference-dir, or remove it") from None
        # The reference side and its settings are now the recorded ones (compare --against).
        yield {**v, "against": folder, "hf_options": None, "hf_kwargs": None, "generation_config": None,
               "hf_generate": False}


def _compare_options(v: dict[str, Any]) -> CompareOptions:
    """The ``CompareOptions`` (the run's config object) for checked ``compare()`` arguments."""
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.parity.run import BackendChoice, CompareOptions
    from hf2vllm.server.compare_sides import resolve_sides, server_options

    vllm_side: dict[str, Any] = {}
    if v["max_model_len"]:
        vllm_side["max_model_len"] = v["max_model_len"]
    if v["kv_cache_gib"]:
        vllm_side["kv_cache_gib"] = v["kv_cache_gib"]
    if v["vllm_batch_size"]:
        vllm_side["batch_size"] = v["vllm_batch_size"]
    image_example = '{"size": {"longest_edge": 128}}'
    shared_mm = json_object_option(v["mm_processor_kwargs"], "--mm-processor-kwargs", example=image_example)
    vllm_mm = json_object_option(v["vllm_mm_processor_kwargs"], "--vllm-mm-processor-kwargs", example=image_example)
    if vllm_mm is not None:
        vllm_side["mm_processor_kwargs"] = {**(shared_mm or {}), **vllm_mm}
    server = v["server"]
    sides = resolve_sides(v["reference"], v["candidate"], server)
    side_options: dict[str, dict[str, Any]] = {
        "hf": {"batch_size": v["hf_batch_size"], "max_batch_tokens": v["hf_batch_tokens"]}, "vllm": vllm_side,
    }
    if server:
        side_options["server"] = server_options(
            server, served_model=v["served_model"], api_key_env=v["api_key_env"], concurrency=v["concurrency"],
            stream=v["stream"], journal=str(v["journal"]) if v["journal"] else None, resume=v["resume"],
            timeout_s=v["request_timeout"], max_retries=v["max_retries"],
            requests_per_minute=v["requests_per_minute"], tokens_per_minute=v["tokens_per_minute"],
        )
    model = None if v["model"] is None else str(v["model"])
    max_new_tokens = v["max_new_tokens"]
    if v["vllm_model"] is not None:
        if v["against"] is None:
            raise InputError("vllm_model: a separate vLLM checkpoint is compared against a record (against=REF), "
                             "or in a pooling run (hf2vllm compare --task hidden-states --vllm-model ...)")
        if "vllm" not in sides:
            raise InputError("vllm_model: the candidate is a server, which serves its own model; leave vllm_model out")
        side_options["vllm"]["model"] = str(v["vllm_model"])
    spec = None
    if v["hf_kwargs"] is not None or v["generation_config"] is not None:
        from hf2vllm.models import resolve_model
        from hf2vllm.translation import spec_for_compare

        settings = json_object_option(v["hf_kwargs"], "--hf-kwargs", example='{"max_new_tokens": 32}') or {}
        spec = spec_for_compare(settings, v["generation_config"], resolve_model(model))
        max_new_tokens = spec.max_new_tokens
    reference_choice, candidate_choice = per_side_choices(
        [BackendChoice(kind=sides[0], options=side_options[sides[0]]),
         BackendChoice(kind=sides[1], options=side_options[sides[1]])],
        side_assignments(v["hf_options"]), side_assignments(v["vllm_options"]), v["no_chat_template"],
        v["vllm_tokenize"],
    )
    given: dict[str, Any] = {}  # left out: with against=, the recorded value applies
    if max_new_tokens is not None or v["against"] is None:
        given["max_new_tokens"] = 64 if max_new_tokens is None else max_new_tokens
        given["max_new_tokens_given"] = v["max_new_tokens"] is not None and spec is None
    if v["dtype"] is not None or v["against"] is None:
        given["dtype"] = normalise_dtype(v["dtype"] or "float32")
    return CompareOptions(
        model=model,
        prompts=v["prompts"],
        against=None if v["against"] is None else Path(v["against"]),
        **given,
        spec=spec,
        limit=v["limit"],
        max_model_len=v["max_model_len"],
        reference=reference_choice,
        candidate=candidate_choice,
        logprobs=v["logprobs"],
        explain=v["explain"],
        mm_processor_kwargs=shared_mm,
        hf_generate=v["hf_generate"],
        calibration_requests=v["calibration_requests"],
        group_by=v["group_by"],
    )


def translate(
    hf: JsonObject | None = None,
    *,
    vllm: JsonObject | None = None,
    model: str | Path | None = None,
    generation_config: str | Path | None = None,
    prompt_length: int | None = None,
) -> Translation:
    """Translate generation settings exactly, resolving each library's defaults (HF's top_k=50, eos lists...).

    Give exactly one of ``hf`` (``generate()`` kwargs) or ``vllm`` (``SamplingParams`` kwargs, the
    reverse direction), each a dict or JSON text / ``@file.json``. ``model`` (checkpoint dir or cached
    name) or ``generation_config`` (its ``generation_config.json``) supply the model's defaults and eos
    ids; without either, the eos ids are left to the model on both sides (noted). ``prompt_length``
    resolves ``max_length``/``min_length``, which count the prompt.

    The result's ``vllm`` is ready for ``vllm.SamplingParams(**translation.vllm)``, ``hf`` for
    ``model.generate(**translation.hf)``, ``openai`` for a vLLM server's request body; ``lines`` and
    ``notes`` say why. Raises ``InputError`` for a bad value and ``UnsupportedParameterError`` for a
    setting the other library cannot reproduce.
    """
    from hf2vllm import checks

    if (hf is None) == (vllm is None):
        raise InputError("give exactly one of --hf JSON or --vllm JSON")
    if model is not None and generation_config is not None:
        raise InputError("give --model or --generation-config, not both")
    if vllm is not None and generation_config is not None:
        raise InputError("--vllm resolves eos and defaults from --model DIR, not --generation-config")
    if vllm is not None and prompt_length is not None:
        raise InputError("--prompt-length resolves --hf max_length/min_length; --vllm settings never count the "
                         "prompt, so leave it out")
    checks.number(prompt_length, "--prompt-length", minimum=1)
    option, given = ("--hf", hf) if hf is not None else ("--vllm", vllm)
    example = '{"max_new_tokens": 32}' if hf is not None else '{"max_tokens": 32}'
    settings = json_object_option(given, option, example=example)
    assert settings is not None
    model_path = None
    if model is not None:
        from hf2vllm.models import resolve_model

        model_path = resolve_model(model)
        checks.model_config(model_path, "--model")
    if generation_config is not None:
        from hf2vllm.translation import read_generation_config

        read_generation_config(generation_config, "--generation-config")
    from hf2vllm.translation import translate_hf, translate_vllm

    try:
        if hf is not None:
            return translate_hf(settings, generation_config=generation_config, model=model_path,
                                prompt_length=prompt_length)
        return translate_vllm(settings, model=model_path)
    except InputError as err:
        raise InputError(f"{option}: {err}") from None


from hf2vllm.reference.record import record  # noqa: E402 - the reference side alone, kept for compare(against=)

__all__ = ["compare", "record", "translate"]
