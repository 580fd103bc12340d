"""The version-dependent part of vLLM's pooling API, detected from the installed vLLM.

vLLM changed how normalisation is switched off: ``PoolerConfig(normalize=False)`` until the pooler
refactor, ``PoolerConfig(use_activation=False)`` since (0.32 rejects ``normalize`` outright:
"Parameter `normalize` was removed; use `use_activation` instead"). The per-token task was called
``encode`` before it was split into ``token_embed``/``token_classify``. The engine argument selecting
a pooling model is ``runner="pooling"`` (older: ``task="embed"``). Rather than a table of version
numbers, each choice is read from the installed classes, and the version is recorded for the report.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

TOKEN_TASK = "token_embed"
SEQUENCE_TASK = "embed"


class PoolingAPI(BaseModel):
    """How the installed vLLM spells the pooling settings hf2vllm needs."""

    vllm_version: str
    normalise_field: str = Field(description='"use_activation" (vLLM >= 0.11-ish) or "normalize" (older).')
    token_task: str = Field(description='Per-token pooling task: "token_embed" (new) or "encode" (old).')
    sequence_task: str = "embed"
    pooler_has_task: bool = Field(description="PoolerConfig has a `task` field (one task per engine).")
    engine_selector: str = Field(description='"runner" (LLM(runner="pooling")) or "task" (LLM(task="embed")).')

    def normalise_setting(self, on: bool) -> str:
        """The exact setting a user writes to get normalisation ``on`` (used in error messages)."""
        return f"PoolerConfig({self.normalise_field}={on})"


def pooler_config_fields(pooler_config_cls: Any) -> set[str]:
    """Field names of vLLM's ``PoolerConfig`` (a pydantic dataclass in every version seen)."""
    if dataclasses.is_dataclass(pooler_config_cls):
        return {f.name for f in dataclasses.fields(pooler_config_cls)}
    return set(getattr(pooler_config_cls, "model_fields", {}) or {})


def detect_pooling_api() -> PoolingAPI:
    """Inspect the installed vLLM (imports it)."""
    import inspect

    import vllm
    from vllm.config import PoolerConfig

    fields = pooler_config_fields(PoolerConfig)
    try:
        from vllm.tasks import POOLING_TASKS

        tasks = set(POOLING_TASKS)
    except ImportError:
        tasks = set()
    llm_params = inspect.signature(vllm.LLM.__init__).parameters
    # LLM takes **kwargs into EngineArgs; "runner" is the EngineArgs field on every version that has it.
    from vllm.engine.arg_utils import EngineArgs

    engine_fields = {f.name for f in dataclasses.fields(EngineArgs)}
    return resolve_pooling_api(str(vllm.__version__), fields, tasks, engine_fields | set(llm_params))


def resolve_pooling_api(version: str, pooler_fields: set[str], tasks: set[str], engine_fields: set[str]) -> PoolingAPI:
    """Pure core of :func:`detect_pooling_api` (unit-tested with the field sets of several versions)."""
    if "use_activation" in pooler_fields:
        normalise_field = "use_activation"
    elif "normalize" in pooler_fields:
        normalise_field = "normalize"
    else:
        raise RuntimeError(f"vLLM {version}: PoolerConfig has neither use_activation nor normalize; unsupported")
    token_task = TOKEN_TASK if (not tasks or TOKEN_TASK in tasks) else "encode"
    return PoolingAPI(
        vllm_version=version,
        normalise_field=normalise_field,
        token_task=token_task,
        pooler_has_task="task" in pooler_fields,
        engine_selector="runner" if "runner" in engine_fields else "task",
    )


def pooling_engine_kwargs(
    api: PoolingAPI, task: str, *, normalise: bool, pooling_type: str | None = None
) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for a pooling engine serving ``task`` ("token"|"sequence").

    Normalisation is set *explicitly* in the pooler config: relying on the default is the bug.
    """
    from vllm.config import PoolerConfig

    vllm_task = api.token_task if task == "token" else api.sequence_task
    pooler: dict[str, Any] = {api.normalise_field: normalise}
    if api.pooler_has_task:
        pooler["task"] = vllm_task
    if pooling_type is not None:
        pooler["pooling_type"] = pooling_type
    kwargs: dict[str, Any] = {"pooler_config": PoolerConfig(**pooler)}
    if api.engine_selector == "runner":
        kwargs["runner"] = "pooling"
    else:
        kwargs["task"] = "embed"
    return kwargs


def pooling_params(api: PoolingAPI, *, normalise: bool | None) -> Any:
    """Per-request ``PoolingParams``; ``normalise=None`` keeps the engine's setting (the default path)."""
    from vllm.pooling_params import PoolingParams

    if normalise is None:
        return PoolingParams()
    return PoolingParams(**{api.normalise_field: normalise})
