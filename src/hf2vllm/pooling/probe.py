"""Probe heads (linear or small MLP) applied to hidden states from either backend.

File format: a safetensors file or a torch state dict (``.pt``/``.pth``/``.bin``). Layers are
``weight``/``bias`` (one linear layer) or ``<n>.weight``/``<n>.bias`` in ``nn.Sequential`` order (an
MLP, ReLU between layers unless ``activation`` says otherwise). Optional safetensors metadata:
``pooling`` ("token": one prediction per token, the default; "last"/"mean": one per request),
``labels`` (JSON list of class names), ``activation`` ("relu"|"gelu"|"tanh").

Labelled sets (JSONL)::

    {"id": "q1", "messages": [...], "spans": [[5, 8]], "label": 1}
    {"id": "q2", "messages": [...], "spans": [[5, 6], [9, 12]], "label": ["city", "country"]}

A span is ``[start, end)`` in *token positions* of the prompt as the one tokenisation path produced
it (``PreparedRequest.prompt_token_ids``). The probe's logits are averaged over the span's tokens.
The text shown for a span is decoded from those token ids on the spot, never taken from a string the
user wrote: a gold string and a token span drift apart silently (a leading space, a merged token).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from hf2vllm.errors import InputError
from hf2vllm.requests import PreparedRequest

ProbePooling = Literal["token", "last", "mean"]


class ProbeHead(BaseModel):
    """Weights of a probe as float64 arrays (numpy): ``layers[i] = (weight[out, in], bias[out])``."""

    model_config = {"arbitrary_types_allowed": True}

    layers: list[tuple[Any, Any]]
    activation: str = "relu"
    pooling: ProbePooling = "token"
    labels: list[str] | None = None
    source: str = ""

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def classes(self) -> int:
        return int(self.layers[-1][0].shape[0])

    def logits(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float64)
        if h.shape[-1] != self.input_dim:
            raise InputError(f"probe {self.source}: expects {self.input_dim}-dim inputs, hidden states have {h.shape[-1]}")
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + (0.0 if b is None else b)
            if i < len(self.layers) - 1:
                h = _activate(h, self.activation)
        return h

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index per row (a 1-output head is binary: logit > 0)."""
        z = self.logits(x)
        if z.shape[-1] == 1:
            return (z[..., 0] > 0).astype(np.int64)
        return z.argmax(axis=-1)

    def label_name(self, index: int) -> str:
        return self.labels[index] if self.labels and 0 <= index < len(self.labels) else str(index)


def _activate(h: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(h, 0.0)
    if name == "tanh":
        return np.tanh(h)
    if name == "gelu":
        from math import erf

        return 0.5 * h * (1.0 + np.vectorize(erf)(h / np.sqrt(2.0)))
    raise InputError(f"probe activation {name!r} unknown; use relu, gelu or tanh")


def load_probe(path: Path) -> ProbeHead:
    """Read a probe head; a malformed file raises ``InputError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--probe {path}: file not found")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no items()
            metadata = dict(fh.metadata() or {})
    else:
        import torch

        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for a file that is not a state dict
            raise InputError(f"--probe {path}: not a torch state dict ({type(err).__name__}: {err})") from None
        if not isinstance(raw, dict):
            raise InputError(f"--probe {path}: expected a state dict, got {type(raw).__name__}")
        tensors = {k: v.detach().float().numpy() for k, v in raw.items() if hasattr(v, "detach")}
    layers = _layers_from_state_dict(tensors, path)
    pooling = metadata.get("pooling", "token")
    if pooling not in ("token", "last", "mean"):
        raise InputError(f"--probe {path}: metadata pooling={pooling!r}; use token, last or mean")
    labels = json.loads(metadata["labels"]) if "labels" in metadata else None
    return ProbeHead(
        layers=layers,
        activation=metadata.get("activation", "relu"),
        pooling=pooling,  # type: ignore[arg-type]
        labels=labels,
        source=str(path),
    )


def _layers_from_state_dict(tensors: dict[str, Any], path: Path) -> list[tuple[Any, Any]]:
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf not in ("weight", "bias"):
            raise InputError(f"--probe {path}: unexpected tensor {key!r} (want weight/bias per layer)")
        groups.setdefault(prefix, {})[leaf] = np.asarray(value, dtype=np.float64)
    if not groups:
        raise InputError(f"--probe {path}: no tensors")

    def order(prefix: str) -> tuple[int, str]:
        last = prefix.rsplit(".", 1)[-1]
        return (int(last), prefix) if last.isdigit() else (-1, prefix)

    layers = []
    for prefix in sorted(groups, key=order):
        group = groups[prefix]
        if "weight" not in group or group["weight"].ndim != 2:
            raise InputError(f"--probe {path}: layer {prefix or '<root>'!r} needs a 2-D weight")
        layers.append((group["weight"], group.get("bias")))
    for (w1, _), (w2, _) in zip(layers, layers[1:], strict=False):
        if w2.shape[1] != w1.shape[0]:
            raise InputError(f"--probe {path}: layer shapes {w1.shape} -> {w2.shape} do not chain")
    return layers


def save_probe(
    path: Path, layers: Sequence[tuple[np.ndarray, np.ndarray | None]], *, pooling: ProbePooling = "token",
    labels: Sequence[str] | None = None,
) -> Path:
    """Write a probe head as safetensors (the format :func:`load_probe` reads)."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    single = len(layers) == 1
    for i, (w, b) in enumerate(layers):
        prefix = "" if single else f"{2 * i}."
        tensors[f"{prefix}weight"] = np.ascontiguousarray(w, dtype=np.float32)
        if b is not None:
            tensors[f"{prefix}bias"] = np.ascontiguousarray(b, dtype=np.float32)
    metadata = {"pooling": pooling}
    if labels:
        metadata["labels"] = json.dumps(list(labels))
    save_file(tensors, str(path), metadata=metadata)
    return path


def probe_inputs(states: Sequence[np.ndarray], pooling: ProbePooling) -> np.ndarray:
    """Rows the probe sees: every token of every request, or one pooled row per request."""
    if pooling == "token":
        return np.concatenate(states, axis=0)
    if pooling == "last":
        return np.stack([s[-1] for s in states])
    return np.stack([s.mean(axis=0) for s in states])


class LabelledSpan(BaseModel):
    """One gold-labelled span of token positions in one request."""

    request_id: str
    start: int
    end: int
    label: int
    gold_text: str = Field(description="tokenizer.decode(prompt_token_ids[start:end]) — decoded, not copied.")


def is_labelled(requests: Sequence[PreparedRequest]) -> bool:
    """A prompt set is a labelled set when any line has ``spans``; then every line must be complete."""
    if not any("spans" in r.source.metadata for r in requests):
        return False
    for req in requests:
        spans = req.source.metadata.get("spans")
        label = req.source.metadata.get("label")
        if not isinstance(spans, list) or not spans:
            raise InputError(f"request {req.id!r}: \"spans\" must be a non-empty list of [start, end] token positions")
        if label is None:
            raise InputError(f"request {req.id!r}: \"label\" is missing")
        if isinstance(label, list) and len(label) != len(spans):
            raise InputError(f"request {req.id!r}: {len(label)} labels for {len(spans)} spans")
    return True


def labelled_spans(requests: Sequence[PreparedRequest], tokenizer: Any, probe: ProbeHead) -> list[LabelledSpan]:
    """Resolve each request's spans against *its* token ids; labels may be indices or class names."""
    out: list[LabelledSpan] = []
    for req in requests:
        spans = req.source.metadata["spans"]
        labels = req.source.metadata["label"]
        labels = labels if isinstance(labels, list) else [labels] * len(spans)
        n = len(req.prompt_token_ids)
        for span, label in zip(spans, labels, strict=True):
            if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
                raise InputError(f"request {req.id!r}: span {span!r} is not [start, end] token positions")
            start, end = (v if v >= 0 else n + v for v in span)
            if not 0 <= start < end <= n:
                raise InputError(f"request {req.id!r}: span {span} is outside its {n} prompt tokens")
            out.append(
                LabelledSpan(
                    request_id=req.id,
                    start=start,
                    end=end,
                    label=_label_index(label, probe, req.id),
                    gold_text=tokenizer.decode(req.prompt_token_ids[start:end]),
                )
            )
    return out


def _label_index(label: Any, probe: ProbeHead, request_id: str) -> int:
    if isinstance(label, bool) or not isinstance(label, int | str):
        raise InputError(f"request {request_id!r}: label {label!r} must be a class index or name")
    if isinstance(label, int):
        return label
    if probe.labels and label in probe.labels:
        return probe.labels.index(label)
    raise InputError(f"request {request_id!r}: label {label!r} is not one of the probe's labels {probe.labels}")


def span_predictions(probe: ProbeHead, states_by_id: dict[str, np.ndarray], spans: Sequence[LabelledSpan]) -> list[int]:
    """Probe prediction per span: argmax of the span tokens' mean logits."""
    preds = []
    for span in spans:
        logits = probe.logits(states_by_id[span.request_id][span.start : span.end]).mean(axis=0, keepdims=True)
        preds.append(int((logits[0, 0] > 0) if logits.shape[-1] == 1 else logits.argmax(axis=-1)[0]))
    return preds
