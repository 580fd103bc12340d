"""Time to a verdict (issue #19 item 6): how much longer than vLLM alone a whole ``compare`` takes.

ratio = compare's wall time (both loads, both sides' work, the report) / (vLLM's load + generate time)
on the bundled prompt set, for the ways of reaching the verdicts:

- ``hf_generate`` (the old path): HF ``generate()`` on every request;
- ``teacher_forcing`` (the new default): vLLM generates, HF scores vLLM's tokens in one batched forward
  pass and generates only the requests where it disagrees (the forks);
- ``against_record`` (issue #21, optional: ``against=False`` leaves it out): ``compare --against REF``, the
  reference read from a record (``hf2vllm record``) made once per bench run, before the timed runs, from
  the same model, prompts and settings; no HF model loads. The record's own wall time is reported apart
  (``record_seconds``, "record (once)") and is in no ratio; ``against_over_live`` = its median wall time /
  the teacher-forcing path's (the live compare it replaces).

vLLM's time is measured alone, in runs of their own (``vllm_alone``: the candidate side of the same
comparison and nothing else), not read from inside a compare run: there the reference's work beside
vLLM's load could slow it and flatter the ratio. The in-run figure is kept as ``ratio_in_run``.

Every run loads its own backends (fresh loads, closed after), so loads are in both figures. Wall times
are in-process: Python start-up and the imports of torch, Transformers and vLLM are done once before
the first timed run and are in neither path's figure (both paths would pay them equally from a shell).
With ``repeats`` > 1 the paths alternate ABBA (A B, B A, A B, ...) to balance the machine's drift, and
every figure is the median over the repeats.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from hf2vllm.bench.schema import MachineInfo
from hf2vllm.errors import InputError

VerdictPath = Literal["hf_generate", "teacher_forcing", "vllm_alone", "against_record"]
PATHS: tuple[VerdictPath, ...] = ("teacher_forcing", "hf_generate", "vllm_alone")
"""The paths every run has, each exactly once per repeat."""
OLD_PATH: VerdictPath = "hf_generate"
NEW_PATH: VerdictPath = "teacher_forcing"
BASELINE_PATH: VerdictPath = "vllm_alone"
AGAINST_PATH: VerdictPath = "against_record"
OPTIONAL_PATHS: tuple[VerdictPath, ...] = (AGAINST_PATH,)
"""Paths a run may leave out (at most once per repeat when in)."""
ROW_ORDER: tuple[VerdictPath, ...] = (NEW_PATH, AGAINST_PATH, OLD_PATH, BASELINE_PATH)
ORDER_WITH_AGAINST: tuple[VerdictPath, ...] = ROW_ORDER  # the run order (ABBA over it) is the table's row order
TARGETS: dict[str, float] = {"cpu": 1.5, "gpu": 1.3}
"""Most the new path's ratio may be, per device class (issue #19 item 6)."""
PATH_LABELS: dict[str, str] = {
    "hf_generate": "old: HF generate() on every request",
    "teacher_forcing": "new: teacher forcing (HF scores vLLM's tokens)",
    "vllm_alone": "baseline: vLLM alone (same prompts and settings)",
    "against_record": "against a record: compare --against REF (no HF model)",
}
RECORD_LABEL = "record (once, before the timed runs; in no ratio)"
IMPORTS_NOTE = (
    "wall times are in-process: Python start-up and the imports of torch, Transformers and vLLM "
    "({seconds:.1f} s here, done once before the first timed run) are in neither path's figure; "
    "`hf2vllm compare` from a shell pays them on top, equally for both paths"
)

StatusCallback = Callable[[str], None]
ProgressFactory = Callable[[str, int], Callable[[int], None]]


class VerdictTimeRun(BaseModel):
    """One ``run_compare`` of one path: its timings and what it concluded."""

    path: VerdictPath
    repeat: int = Field(0, description="Which repetition (0-based); the order inside one alternates ABBA.")
    wall_seconds: float = Field(description="The whole comparison, both loads included (report.wall_seconds).")
    vllm_load_seconds: float
    vllm_generate_seconds: float
    hf_load_seconds: float
    hf_seconds: float = Field(description="HF's work: generate() on every request, or scoring passes plus forks.")
    hf_mode: str | None = Field(None, description='The reference side\'s mode as reported ("generate", "teacher_forced").')
    ratio: float = Field(description="wall_seconds / vLLM's own load + generate time: the median of the "
                               "vllm_alone runs when there are any, else this run's (ratio_in_run).")
    ratio_in_run: float | None = Field(None, description="wall_seconds / (vllm_load_seconds + vllm_generate_seconds) "
                                                         "of this run.")
    verdicts: dict[str, int] = Field(default_factory=dict)
    exact_matches: int
    requests: int
    forks: int = Field(description="Requests the reference generated itself (all of them on hf_generate, none "
                                   "on against_record: its answers come from the record).")
    verdict_method: str | None = Field(None, description="The method the report says it used.")
    verdict_method_note: str | None = Field(None, description="Why the report fell back to hf_generate, if it did.")
    stage_seconds: dict[str, float] = Field(default_factory=dict, description="The report's time per stage.")


class PathSummary(BaseModel):
    """One path's medians over its repeats."""

    path: VerdictPath
    runs: int
    wall_seconds: float
    vllm_load_seconds: float
    vllm_generate_seconds: float
    hf_load_seconds: float
    hf_seconds: float
    ratio: float = Field(description="Median of the per-run ratios.")
    ratio_spread: list[float] = Field(default_factory=list, description="Lowest and highest per-run ratio.")
    ratio_in_run: float | None = Field(None, description="Median of the per-run ratio_in_run.")
    forks: int
    requests: int
    exact_matches: int
    verdicts: dict[str, int] = Field(default_factory=dict, description="Of the first run (verdicts do not vary).")


class VerdictTimeResult(BaseModel):
    """``hf2vllm bench verdict``: both paths' runs, their medians, the ratios and the target check."""

    kind: Literal["verdict_time"] = "verdict_time"
    machine: MachineInfo | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    accelerator: str | None = Field(None, description="GPU name when device is cuda.")
    model: str | None = Field(None, description="None = the bundled model.")
    dtype: str = "float32"
    max_new_tokens: int = 64
    limit: int | None = None
    repeats: int = 1
    order: list[VerdictPath] = Field(default_factory=lambda: list(PATHS), description="Order of the first repeat.")
    import_seconds: float | None = Field(None, description="Imports done before timing (in neither figure).")
    runs: list[VerdictTimeRun] = Field(default_factory=list, description="Every run, in the order they ran.")
    paths: dict[str, PathSummary] = Field(default_factory=dict)
    ratio_old: float | None = Field(None, description="hf_generate: median ratio.")
    ratio_new: float | None = Field(None, description="teacher_forcing: median ratio.")
    speedup: float | None = Field(None, description="Median old wall time / median new wall time.")
    baseline_seconds: float | None = Field(None, description="vllm_alone: median load + median generate time, "
                                                             "the ratios' denominator.")
    targets: dict[str, float] = Field(default_factory=lambda: dict(TARGETS))
    target: float | None = Field(None, description="The target for the device class this ran on.")
    meets_target: bool | None = Field(None, description="ratio_new <= target.")
    record_seconds: float | None = Field(None, description="Wall time of the one `record` made before the timed "
                                                           "runs (HF load, generate, noise, written to disk); in "
                                                           "no ratio. None: no against_record path.")
    record_bytes: int | None = Field(None, description="Size of that reference directory on disk.")
    ratio_against: float | None = Field(None, description="against_record: median ratio over vLLM alone.")
    against_over_live: float | None = Field(None, description="Median against_record wall time / median "
                                                              "teacher_forcing wall time (< 1: the record is faster).")
    against_over_live_spread: list[float] = Field(default_factory=list, description="Lowest and highest of the "
                                                  "same quotient per repeat (both runs of one repeat).")
    notes: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- pure logic (tested without engines)


def run_order(order: Sequence[str], repeats: int) -> list[tuple[int, VerdictPath]]:
    """(repeat, path) in the order to run them: the given order, then reversed, then given, ... (ABBA).

    ``order`` holds each of ``PATHS`` once and may add each of ``OPTIONAL_PATHS`` once."""
    paths = list(order)
    required = [p for p in paths if p not in OPTIONAL_PATHS]
    optional = [p for p in paths if p in OPTIONAL_PATHS]
    if sorted(required) != sorted(PATHS) or len(optional) != len(set(optional)):
        raise InputError(f"order: expected each of {', '.join(PATHS)} once (and at most once "
                         f"{', '.join(OPTIONAL_PATHS)}), got {', '.join(paths) or 'nothing'}")
    if repeats < 1:
        raise InputError(f"repeats: expected 1 or more, got {repeats}")
    sequence: list[tuple[int, VerdictPath]] = []
    for repeat in range(repeats):
        for path in paths if repeat % 2 == 0 else reversed(paths):
            sequence.append((repeat, path))  # type: ignore[arg-type]
    return sequence


def ratio_of(wall_seconds: float, vllm_load_seconds: float, vllm_generate_seconds: float) -> float:
    """compare's wall time over vLLM's own load + generate time."""
    own = vllm_load_seconds + vllm_generate_seconds
    if own <= 0:
        raise ValueError(f"vLLM's load + generate time must be positive, got {own}")
    return wall_seconds / own


def summarise_path(runs: Sequence[VerdictTimeRun], path: VerdictPath) -> PathSummary | None:
    """Medians of one path's runs; None when it has none."""
    mine = [r for r in runs if r.path == path]
    if not mine:
        return None

    def med(field: str) -> float:
        return round(statistics.median(getattr(r, field) for r in mine), 3)

    ratios = [r.ratio for r in mine]
    return PathSummary(
        path=path,
        runs=len(mine),
        wall_seconds=med("wall_seconds"),
        vllm_load_seconds=med("vllm_load_seconds"),
        vllm_generate_seconds=med("vllm_generate_seconds"),
        hf_load_seconds=med("hf_load_seconds"),
        hf_seconds=med("hf_seconds"),
        ratio=round(statistics.median(ratios), 3),
        ratio_spread=[round(min(ratios), 3), round(max(ratios), 3)],
        ratio_in_run=(round(statistics.median(in_run), 3)
                      if (in_run := [r.ratio_in_run for r in mine if r.ratio_in_run is not None]) else None),
        forks=int(statistics.median_low(r.forks for r in mine)),
        requests=mine[0].requests,
        exact_matches=int(statistics.median_low(r.exact_matches for r in mine)),
        verdicts=dict(mine[0].verdicts),
    )


def against_over_live(runs: Sequence[VerdictTimeRun]) -> tuple[float | None, list[float]]:
    """Median against_record wall / median teacher_forcing wall, and the [lowest, highest] per-repeat quotient
    (the two runs of one repeat, side by side); (None, []) without both paths."""
    against = summarise_path(runs, AGAINST_PATH)
    live = summarise_path(runs, NEW_PATH)
    if against is None or live is None or live.wall_seconds <= 0:
        return None, []
    walls: dict[tuple[str, int], float] = {(r.path, r.repeat): r.wall_seconds for r in runs}
    per_repeat = [walls[(AGAINST_PATH, rep)] / walls[(NEW_PATH, rep)] for (path, rep) in walls
                  if path == AGAINST_PATH and walls.get((NEW_PATH, rep), 0) > 0]
    spread = [round(min(per_repeat), 3), round(max(per_repeat), 3)] if per_repeat else []
    return round(against.wall_seconds / live.wall_seconds, 3), spread


def device_class(device: str) -> str:
    return "gpu" if device == "cuda" else "cpu"


def build_result(runs: Sequence[VerdictTimeRun], **fields: Any) -> VerdictTimeResult:
    """The result from a set of runs: per-path medians, both ratios, the speedup and the target check."""
    baseline = summarise_path(runs, BASELINE_PATH)
    own = baseline.vllm_load_seconds + baseline.vllm_generate_seconds if baseline else None
    if own:
        runs = [r.model_copy(update={"ratio": round(ratio_of(r.wall_seconds, own, 0.0), 3)})
                if r.path != BASELINE_PATH else r for r in runs]
    result = VerdictTimeResult(runs=list(runs), baseline_seconds=round(own, 3) if own else None, **fields)
    paths = {p: s for p in ROW_ORDER if (s := summarise_path(runs, p)) is not None}
    result.paths = paths
    old, new, against = paths.get(OLD_PATH), paths.get(NEW_PATH), paths.get(AGAINST_PATH)
    result.ratio_old = old.ratio if old else None
    result.ratio_new = new.ratio if new else None
    result.ratio_against = against.ratio if against else None
    result.against_over_live, result.against_over_live_spread = against_over_live(runs)
    if old and new and new.wall_seconds > 0:
        result.speedup = round(old.wall_seconds / new.wall_seconds, 3)
    result.target = result.targets.get(device_class(result.device))
    if result.ratio_new is not None and result.target is not None:
        result.meets_target = result.ratio_new <= result.target
    for run in runs:
        if run.path == NEW_PATH and run.verdict_method not in (None, NEW_PATH):
            note = f"teacher_forcing run {run.repeat} fell back to {run.verdict_method}"
            if run.verdict_method_note:
                note += f": {run.verdict_method_note}"
            if note not in result.notes:
                result.notes.append(note)
        if run.path == AGAINST_PATH and run.verdict_method not in (None, "record"):
            note = f"against_record run {run.repeat} reports verdict method {run.verdict_method}, not record"
            if note not in result.notes:
                result.notes.append(note)
    if against and new and against.verdicts != new.verdicts:
        result.notes.append(f"verdicts differ: against_record {_verdict_text(against.verdicts)}, teacher_forcing "
                            f"{_verdict_text(new.verdicts)}")
    return result


def _verdict_text(verdicts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in verdicts.items() if v) or "-"


def run_from_report(report: Any, path: VerdictPath, repeat: int = 0, measured_wall: float | None = None) -> VerdictTimeRun:
    """A ``VerdictTimeRun`` from a ``CompareReport`` (backends[0] = reference HF, [1] = candidate vLLM)."""
    if len(report.backends) < 2:
        raise ValueError(f"expected both backends in the report, got {len(report.backends)}")
    reference, candidate = report.backends[0], report.backends[1]
    wall = report.wall_seconds if getattr(report, "wall_seconds", None) is not None else measured_wall
    if wall is None:
        raise ValueError("the report has no wall_seconds and none was measured")
    rows = report.requests
    # Against a record the reference generates nothing in the run (its answers are read from the record),
    # whatever the rows' reference_generated flag says about where the reference's answers came from.
    forks = 0 if path == AGAINST_PATH else sum(1 for row in rows if getattr(row, "reference_generated", True))
    return VerdictTimeRun(
        path=path,
        repeat=repeat,
        stage_seconds=dict(getattr(report, "stage_seconds", None) or {}),
        wall_seconds=round(wall, 3),
        vllm_load_seconds=candidate.load_seconds,
        vllm_generate_seconds=candidate.generate_seconds,
        hf_load_seconds=reference.load_seconds,
        hf_seconds=reference.generate_seconds,
        hf_mode=getattr(reference, "mode", None),
        ratio=round(ratio_of(wall, candidate.load_seconds, candidate.generate_seconds), 3),
        ratio_in_run=round(ratio_of(wall, candidate.load_seconds, candidate.generate_seconds), 3),
        verdicts=dict(report.summary.verdicts),
        exact_matches=report.summary.exact_matches,
        requests=len(rows),
        forks=forks,
        verdict_method=getattr(report, "verdict_method", None),
        verdict_method_note=getattr(report, "verdict_method_note", None),
    )


def run_from_alone(run: Any, repeat: int, wall_seconds: float) -> VerdictTimeRun:
    """A ``VerdictTimeRun`` from ``run_candidate_alone``'s ``BackendRun`` (the baseline: no HF, no verdicts)."""
    own = ratio_of(wall_seconds, run.load_seconds, run.generate_seconds)
    return VerdictTimeRun(
        path=BASELINE_PATH, repeat=repeat, wall_seconds=round(wall_seconds, 3), vllm_load_seconds=round(run.load_seconds, 3),
        vllm_generate_seconds=round(run.generate_seconds, 3), hf_load_seconds=0.0, hf_seconds=0.0,
        ratio=round(own, 3), ratio_in_run=round(own, 3), exact_matches=0, requests=len(run.results), forks=0,
    )


# ---------------------------------------------------------------- rendering


TABLE_HEADERS = ["path", "wall s", "vLLM load s", "vLLM generate s", "HF load s", "HF s", "ratio",
                 "ratio over in-run vLLM", "forks", "verdicts"]


def table_rows(result: VerdictTimeResult) -> list[list[str]]:
    """One row per path (medians), new path first, then the record made once (when there is one); shared by
    the terminal and the markdown."""
    rows = []
    for path in ROW_ORDER:
        s = result.paths.get(path)
        if s is None:
            continue
        baseline = path == BASELINE_PATH
        ratio = "1 (denominator)" if baseline else f"{s.ratio:.2f}"
        if s.runs > 1 and s.ratio_spread and not baseline:
            ratio += f" ({s.ratio_spread[0]:.2f}-{s.ratio_spread[1]:.2f})"
        in_run = "-" if baseline or s.ratio_in_run is None else f"{s.ratio_in_run:.2f}"
        verdicts = _verdict_text(s.verdicts)
        forks = "-" if baseline else "recorded" if path == AGAINST_PATH else f"{s.forks}/{s.requests}"
        rows.append([PATH_LABELS[path], f"{s.wall_seconds:.1f}", f"{s.vllm_load_seconds:.1f}",
                     f"{s.vllm_generate_seconds:.1f}", "-" if baseline else f"{s.hf_load_seconds:.1f}",
                     "-" if baseline else f"{s.hf_seconds:.1f}", ratio, in_run, forks, verdicts])
    if result.record_seconds is not None:
        rows.append([RECORD_LABEL, f"{result.record_seconds:.1f}", "-", "-", "-", "-", "-", "-", "-", "-"])
    return rows


def verdict_sentence(result: VerdictTimeResult) -> str:
    """Whether the new path meets its target, plus the speedup over the old path."""
    parts = []
    where = "GPU" if result.device == "cuda" else "CPU"
    if result.ratio_new is not None and result.target is not None:
        holds = "holds" if result.meets_target else "missed"
        parts.append(f"target ({where}): new-path ratio {result.ratio_new:.2f} <= {result.target:g}: {holds}")
    if result.ratio_old is not None:
        parts.append(f"old-path ratio {result.ratio_old:.2f}")
    if result.speedup is not None:
        parts.append(f"speedup of the new path (old wall time / new): {result.speedup:.2f}x")
    if result.ratio_against is not None:
        parts.append(f"against-a-record ratio {result.ratio_against:.2f}")
    if result.against_over_live is not None:
        spread = result.against_over_live_spread
        each = (f" (per repeat {spread[0]:.2f}-{spread[1]:.2f})" if len(spread) == 2 and spread[0] != spread[1]
                else "")
        parts.append(f"compare --against / live compare (teacher forcing) wall time: {result.against_over_live:.2f}"
                     + each)
    if result.record_seconds is not None:
        parts.append(f"the record itself took {result.record_seconds:.1f} s once (in no ratio)")
    if parts:
        parts.append(f"vLLM's own time {result.baseline_seconds:.1f} s (measured alone)" if result.baseline_seconds
                     else "vLLM's own time read from inside each compare run (no vllm_alone run)")
    return "; ".join(parts) + "." if parts else "no runs."


def workload_line(result: VerdictTimeResult) -> str:
    limit = f"first {result.limit} requests" if result.limit else "all requests"
    model = result.model or "bundled model"
    where = result.accelerator or result.device
    repeats = f"{result.repeats} runs per path (ABBA order, medians)" if result.repeats > 1 else "one run per path"
    return (f"{model}, bundled prompt set ({limit}), {result.max_new_tokens} new tokens, {result.dtype}, "
            f"device {where}, {repeats}")


def render_table(result: VerdictTimeResult) -> str:
    """The markdown page: workload, the table, the target sentence, notes."""
    lines = ["# Time to a verdict", "",
             "Written by `hf2vllm bench verdict` (see [bench.md](bench.md#time-to-a-verdict)). ratio = compare's "
             "wall time (loads included) / (vLLM's load + generate time), vLLM's time measured in runs of its own "
             "(the baseline row; medians).", "",
             workload_line(result) + ".", ""]
    machine = result.machine
    if machine is not None:
        lines += [f"Machine: {machine.cpu_model}, {machine.logical_cpus} CPUs, {machine.memory_gib} GiB; load "
                  f"average at start {machine.load_average_start}, at end {machine.load_average_end or '-'}; "
                  f"{machine.started_at} to {machine.finished_at or '-'}.", ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(TABLE_HEADERS))) + "|")
    for row in table_rows(result):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += ["", verdict_sentence(result), ""]
    for note in result.notes:
        lines.append(f"- {note}")
    if result.notes:
        lines.append("")
    return "\n".join(lines)


def write_json(result: VerdictTimeResult, path: Path) -> Path:
    """Atomically (temp file + rename), like bench.json."""
    from hf2vllm.bench.outputs.json_file import write_json as write_model

    return write_model(result, path)


def write_markdown(result: VerdictTimeResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_table(result), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the real run


def _import_engines() -> float:
    """Import the heavy libraries once, before any timing, so neither path pays them."""
    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    try:
        import vllm  # noqa: F401
    except ImportError:
        pass  # run_compare's availability check reports it
    return time.perf_counter() - start


def _accelerator(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    if not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here")
    return str(torch.cuda.get_device_name(0))


def run_verdict_time(
    model: str | None = None,
    dtype: str = "float32",
    max_new_tokens: int = 64,
    limit: int | None = None,
    device: Literal["cpu", "cuda"] = "cpu",
    order: Sequence[str] | None = None,
    repeats: int = 1,
    progress: ProgressFactory | None = None,
    on_status: StatusCallback | None = None,
    on_run: Callable[[VerdictTimeResult], None] | None = None,
    warmup: bool = True,
    against: bool = True,
) -> VerdictTimeResult:
    """Run ``run_compare`` for each path (``repeats`` times, ABBA), each with fresh loads; medians.

    ``against``: add the ``against_record`` path (one ``record`` made first, into a temporary directory
    removed at the end). ``order`` defaults to ``ORDER_WITH_AGAINST`` (``PATHS`` without ``against``).
    ``on_run`` gets the partial result after every run (a run cut short keeps what it measured).
    """
    from hf2vllm.bench.machine import collect_machine
    from hf2vllm.parity.run import CompareOptions

    if device not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, got {device!r}")
    if "hf_generate" not in CompareOptions.model_fields:
        raise InputError("this hf2vllm has no CompareOptions.hf_generate: the teacher-forcing path is missing")
    if order is None:
        order = ORDER_WITH_AGAINST if against else PATHS
    elif not against:
        order = [p for p in order if p != AGAINST_PATH]
    sequence = run_order(order, repeats)
    with_against = AGAINST_PATH in order
    accelerator = _accelerator(device)
    machine = collect_machine()
    if on_status:
        on_status("importing torch, Transformers, vLLM (not timed)")
    import_seconds = _import_engines()
    fields: dict[str, Any] = dict(machine=machine, device=device, accelerator=accelerator, model=model, dtype=dtype,
                                  max_new_tokens=max_new_tokens, limit=limit, repeats=repeats, order=list(order),
                                  import_seconds=round(import_seconds, 3))
    notes = [IMPORTS_NOTE.format(seconds=import_seconds)]
    scratch = tempfile.TemporaryDirectory(prefix="hf2vllm-bench-record-") if with_against else None
    reference_dir = Path(scratch.name) / "reference" if scratch else None
    try:
        return _timed_runs(sequence, fields, notes, machine, reference_dir, model=model, dtype=dtype,
                           max_new_tokens=max_new_tokens, limit=limit, device=device, warmup=warmup, repeats=repeats,
                           progress=progress, on_status=on_status, on_run=on_run)
    finally:
        if scratch is not None:
            scratch.cleanup()


def _make_record(reference_dir: Path, *, model: str | None, dtype: str, max_new_tokens: int, limit: int | None,
                 device: str, progress: ProgressFactory | None, on_status: StatusCallback | None
                 ) -> tuple[float, int]:
    """The one record of the bench run (the live compare's reference side: same model, prompts, settings,
    HF options); its wall time and size on disk."""
    from hf2vllm.reference.record import RecordOptions, record_reference

    if on_status:
        on_status("record (once, in no ratio): HF reference into a temporary directory")
    start = time.perf_counter()
    record_reference(RecordOptions(model=model, dtype=dtype, max_new_tokens=max_new_tokens, limit=limit,
                                   hf_options={"device": "cuda"} if device == "cuda" else {}),
                     out=reference_dir, progress=progress, on_status=on_status)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in reference_dir.rglob("*") if f.is_file())
    return seconds, size


def _timed_runs(
    sequence: list[tuple[int, VerdictPath]], fields: dict[str, Any], notes: list[str], machine: Any,
    reference_dir: Path | None, *, model: str | None, dtype: str, max_new_tokens: int, limit: int | None,
    device: str, warmup: bool, repeats: int, progress: ProgressFactory | None, on_status: StatusCallback | None,
    on_run: Callable[[VerdictTimeResult], None] | None,
) -> VerdictTimeResult:
    from hf2vllm.bench.machine import finish_machine
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_candidate_alone, run_compare

    if reference_dir is not None:
        seconds, size = _make_record(reference_dir, model=model, dtype=dtype, max_new_tokens=max_new_tokens,
                                     limit=limit, device=device, progress=progress, on_status=on_status)
        fields.update(record_seconds=round(seconds, 3), record_bytes=size)
        notes.append("against_record: the record was made once, before the warm-up and the timed runs, from the "
                     "same model, prompts and settings; its wall time is the \"record (once)\" row and is in no "
                     "ratio. Its HF load s / HF s are the record's read and look-up")
    if warmup:
        # The session's first engine start pays for cold disk caches and first-time set-up (measured here:
        # vLLM's load 15.5 s in the first run, 12.8-13.3 s after): one untimed vLLM-alone run takes it.
        if on_status:
            on_status("warm-up: one untimed vLLM-alone run (the session's cold start)")
        run_candidate_alone(CompareOptions(model=model, dtype=dtype, max_new_tokens=max_new_tokens, limit=limit))
        notes.append("one untimed vLLM-alone run before the timed runs took the session's cold start")
    elif repeats == 1:
        notes.append(f"one run per path: the first ({sequence[0][1]}) also pays the session's cold start (first "
                     "loads from disk, first engine start); --repeats 2 or more balances that (ABBA order)")
    runs: list[VerdictTimeRun] = []
    for index, (repeat, path) in enumerate(sequence):
        tag = f"[{index + 1}/{len(sequence)} {path}]"
        status = (lambda m, tag=tag: on_status(f"{tag} {m}")) if on_status else None
        bars = (lambda label, total, tag=tag: progress(f"{tag} {label}", total)) if progress else None
        if on_status:
            on_status(f"{tag} starting")
        options: dict[str, Any] = dict(model=model, dtype=dtype, max_new_tokens=max_new_tokens, limit=limit,
                                       hf_generate=path == OLD_PATH)
        if path == AGAINST_PATH:
            options["against"] = reference_dir
        elif device == "cuda":
            options["reference"] = BackendChoice(kind="hf", options={"device": "cuda"})
        start = time.perf_counter()
        if path == BASELINE_PATH:
            alone = run_candidate_alone(CompareOptions(**options), progress=bars)
            runs.append(run_from_alone(alone, repeat, time.perf_counter() - start))
        else:
            report = run_compare(CompareOptions(**options), progress=bars, on_status=status)
            measured = time.perf_counter() - start
            runs.append(run_from_report(report, path, repeat, measured_wall=measured))
        if on_run is not None:
            on_run(build_result(runs, **fields, notes=list(notes)))
    fields["machine"] = finish_machine(machine)
    return build_result(runs, **fields, notes=notes)
