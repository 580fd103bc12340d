"""Content hashes that say whether a later run talks about the same model, tokenizer, template and prompts.

Weight files are hashed once per (path, size, mtime) and the hash kept in ``state_dir()/hashes.json``:
a 16 GB checkpoint costs ~15 s to hash, a check against a record should not pay it every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hf2vllm.reference.identity import ModelFingerprint, PromptsFingerprint

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "tokenizer_config.json",
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hash_cache() -> Path:
    from hf2vllm.models import state_dir

    return state_dir() / "hashes.json"


def cached_file_sha256(path: Path) -> str:
    """``file_sha256`` remembered by (resolved path, size, mtime): a changed file is hashed again."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _hash_cache()
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    value = file_sha256(path)
    cache[key] = value
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache, indent=0))
        os.replace(tmp, cache_file)  # several processes may hash at once: last writer wins, nothing torn
    except OSError:
        pass  # a read-only home only costs the next run another hash
    return value


def weight_files(model_path: Path) -> list[Path]:
    return sorted(p for p in model_path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def tokenizer_sha256(model_path: Path) -> str | None:
    """The tokenizer's files, with tokenizer_config.json's chat_template left out (hashed on its own)."""
    digest = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        path = model_path / name
        if not path.is_file():
            continue
        found = True
        data = path.read_bytes()
        if name == "tokenizer_config.json":
            config = json.loads(data)
            config.pop("chat_template", None)
            data = json.dumps(config, sort_keys=True).encode()
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest() if found else None


def model_fingerprint(model_path: Path, tokenizer: Any) -> ModelFingerprint:
    """Hashes of ``model_path``'s config, weights and tokenizer, and of ``tokenizer``'s chat template
    (the loaded one: it may come from chat_template.jinja or tokenizer_config.json)."""
    config = model_path / "config.json"
    files = {p.name: cached_file_sha256(p) for p in weight_files(model_path)}
    combined = hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(files.items())).encode()).hexdigest()
    template = getattr(tokenizer, "chat_template", None)
    return ModelFingerprint(
        path=str(model_path),
        config_sha256=file_sha256(config) if config.is_file() else None,
        weights_sha256=combined if files else None,
        weight_files=files,
        tokenizer_sha256=tokenizer_sha256(model_path),
        chat_template_sha256=text_sha256(template) if isinstance(template, str) else None,
    )


def prompts_fingerprint(path: Path, shown: str, requests: int, limit: int | None) -> PromptsFingerprint:
    return PromptsFingerprint(path=shown, sha256=file_sha256(path), requests=requests, limit=limit)
