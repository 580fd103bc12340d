"""Getting vectors out of each backend: per-token last-layer hidden states and sequence embeddings.

Both sides receive the same ``PreparedRequest.prompt_token_ids`` (the one tokenisation path). HF runs
one request per forward pass (no padding, so no mask subtleties); vLLM runs them all through
``LLM.encode`` on a pooling engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hf2vllm.pooling.vllm_compat import PoolingAPI, pooling_params
from hf2vllm.requests import PreparedRequest

SequencePooling = Literal["LAST", "MEAN", "CLS"]


def hf_hidden_states(model: Any, requests: Sequence[PreparedRequest]) -> list[np.ndarray]:
    """Last-layer hidden states ``[tokens, hidden]`` per request, after the final norm.

    Transformers overwrites ``hidden_states[-1]`` with ``last_hidden_state`` (post-norm) for language
    models, which is what vLLM's pooling runner returns. ``model`` may be a ``*ForCausalLM``, the inner
    ``*Model``, or a PEFT wrapper around either.
    """
    import torch

    out: list[np.ndarray] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for req in requests:
            ids = torch.tensor([req.prompt_token_ids], dtype=torch.long, device=device)
            result = model(input_ids=ids, output_hidden_states=True)
            out.append(result.hidden_states[-1][0].float().cpu().numpy())
    return out


def pool_sequence(hidden: np.ndarray, pooling: SequencePooling) -> np.ndarray:
    """One vector per sequence from ``[tokens, hidden]``, as vLLM's LAST/MEAN/CLS poolers do."""
    if pooling == "LAST":
        return hidden[-1]
    if pooling == "CLS":
        return hidden[0]
    return hidden.mean(axis=0)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def vllm_token_states(
    llm: Any,
    api: PoolingAPI,
    requests: Sequence[PreparedRequest],
    *,
    normalise: bool | None = None,
    lora_request: Any = None,
) -> list[np.ndarray]:
    """Per-token outputs of vLLM's pooling runner (``token_embed``); ``normalise=None`` keeps the
    engine's configured setting, which is how a user who never set it would run."""
    outputs = llm.encode(
        [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests],
        pooling_params=pooling_params(api, normalise=normalise),
        pooling_task=api.token_task,
        lora_request=lora_request,
        use_tqdm=False,
    )
    return [_to_numpy(o.outputs.data) for o in outputs]


def vllm_sequence_embeddings(
    llm: Any,
    api: PoolingAPI,
    requests: Sequence[PreparedRequest],
    *,
    normalise: bool | None = None,
    lora_request: Any = None,
) -> np.ndarray:
    outputs = llm.encode(
        [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests],
        pooling_params=pooling_params(api, normalise=normalise),
        pooling_task=api.sequence_task,
        lora_request=lora_request,
        use_tqdm=False,
    )
    return np.stack([_to_numpy(o.outputs.data) for o in outputs])


def _to_numpy(data: Any) -> np.ndarray:
    if hasattr(data, "detach"):
        return data.detach().float().cpu().numpy()
    return np.asarray(data, dtype=np.float32)


class SentenceTransformersPooling:
    """Pooling and normalisation declared by a sentence-transformers checkpoint (``modules.json``)."""

    def __init__(self, pooling: SequencePooling, normalise: bool, source: str) -> None:
        self.pooling = pooling
        self.normalise = normalise
        self.source = source

    def __repr__(self) -> str:
        return f"SentenceTransformersPooling({self.pooling}, normalise={self.normalise}, from {self.source})"


def sentence_transformers_pooling(model_dir: Path) -> SentenceTransformersPooling | None:
    """Read ``modules.json`` + the Pooling module's ``config.json``; None when the model has none.

    Mapping (sentence-transformers ``Pooling`` flags -> vLLM seq pooling types):
    ``pooling_mode_cls_token`` -> CLS, ``pooling_mode_mean_tokens`` -> MEAN,
    ``pooling_mode_lasttoken`` -> LAST; a ``Normalize`` module -> L2 normalisation on.
    """
    import json

    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    pooling: SequencePooling | None = None
    normalise = False
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Pooling"):
            cfg_file = model_dir / str(module.get("path", "")) / "config.json"
            cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
            if cfg.get("pooling_mode_cls_token"):
                pooling = "CLS"
            elif cfg.get("pooling_mode_lasttoken"):
                pooling = "LAST"
            elif cfg.get("pooling_mode_mean_tokens"):
                pooling = "MEAN"
            else:
                modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
                raise ValueError(f"{cfg_file}: pooling mode {modes} has no vLLM equivalent (CLS/MEAN/LAST)")
        elif kind.endswith("Normalize"):
            normalise = True
    if pooling is None:
        return None
    return SentenceTransformersPooling(pooling, normalise, str(modules_file))
