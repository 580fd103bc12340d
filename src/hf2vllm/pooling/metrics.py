"""Pure comparisons of two sets of vectors (hidden states, embeddings, probe outputs).

Rows are matched by position: row i of ``reference`` and row i of ``candidate`` describe the same
token (or the same request, for sequence embeddings). Numpy in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

UNIT_NORM_TOLERANCE = 1e-3
"""|norm - 1| below this for every row means the side was L2-normalised (a raw hidden state of a
trained model is essentially never unit length: the bundled model's are ~46)."""


class VectorAgreement(BaseModel):
    """How closely two matched sets of vectors agree."""

    rows: int
    cosine_min: float
    cosine_mean: float
    relative_l2_error: float = Field(description="||ref - cand|| / ||ref|| over all rows (Frobenius).")
    relative_l2_max: float = Field(description="Largest per-row ||ref_i - cand_i|| / ||ref_i||.")
    norm_ratio_mean: float = Field(description="Mean of ||cand_i|| / ||ref_i||; 1.0 when scales agree.")
    reference_norm_mean: float
    candidate_norm_mean: float


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(1, -1) if x.ndim == 1 else x


def row_norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(_as_2d(x), axis=-1)


def cosine_rows(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; a zero row on both sides counts as 1.0, on one side as 0.0."""
    a, b = _as_2d(reference), _as_2d(candidate)
    na, nb = row_norms(a), row_norms(b)
    dot = np.einsum("ij,ij->i", a, b)
    denom = na * nb
    out = np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, out)


def compare_vectors(reference: np.ndarray, candidate: np.ndarray) -> VectorAgreement:
    """Cosine (min, mean), relative L2 error and norm ratio of matched rows."""
    a, b = _as_2d(reference), _as_2d(candidate)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: reference {a.shape} vs candidate {b.shape}")
    cos = cosine_rows(a, b)
    na, nb = row_norms(a), row_norms(b)
    diff = row_norms(a - b)
    safe = np.where(na > 0, na, 1.0)
    total = float(np.linalg.norm(a))
    return VectorAgreement(
        rows=int(a.shape[0]),
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        relative_l2_error=float(np.linalg.norm(a - b) / total) if total > 0 else 0.0,
        relative_l2_max=float((diff / safe).max()),
        norm_ratio_mean=float((nb / safe).mean()),
        reference_norm_mean=float(na.mean()),
        candidate_norm_mean=float(nb.mean()),
    )


def is_unit_normalised(norms: Sequence[float] | np.ndarray, tolerance: float = UNIT_NORM_TOLERANCE) -> bool:
    """True when every row has unit L2 norm (within ``tolerance``)."""
    values = np.asarray(norms, dtype=np.float64)
    return bool(values.size) and bool(np.all(np.abs(values - 1.0) < tolerance))


class NormalisationState(BaseModel):
    """Which side looks L2-normalised, judged from the norms alone."""

    reference_normalised: bool
    candidate_normalised: bool
    reference_norm_mean: float
    candidate_norm_mean: float

    @property
    def mismatch(self) -> bool:
        return self.reference_normalised != self.candidate_normalised


def normalisation_state(reference_norms: np.ndarray, candidate_norms: np.ndarray) -> NormalisationState:
    return NormalisationState(
        reference_normalised=is_unit_normalised(reference_norms),
        candidate_normalised=is_unit_normalised(candidate_norms),
        reference_norm_mean=float(np.mean(reference_norms)),
        candidate_norm_mean=float(np.mean(candidate_norms)),
    )


def agreement_rate(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Share of positions where two label sequences agree."""
    if len(reference) != len(candidate):
        raise ValueError(f"length mismatch: {len(reference)} vs {len(candidate)}")
    if not reference:
        return 1.0
    return sum(int(a == b) for a, b in zip(reference, candidate, strict=True)) / len(reference)
