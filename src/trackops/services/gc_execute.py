"""Executing a gc plan once: files first, then rows, chunk by chunk; failures are per item.

Order, and why:

1. Runs, then logged models, then traces, then experiments (an experiment's rows can only go once
   its members' rows are gone; its location goes after its members).
2. For each kind, the files of all its items are deleted first (one listing per shared folder),
   then the rows, in chunks of `CHUNK_ITEMS`, only for the items whose files all went. An
   interruption therefore never leaves files that no row points to: at worst rows point to files
   that are already gone, and the next gc (the item is still in the deleted stage) deletes them;
   "already gone" counts as success.
3. Orphaned prefixes last: nothing references them.

No target outside the plan's artifact roots (`gc_roots`) is ever deleted, whatever the plan says.

On S3, targets that share a folder are found with one listing of that folder and deleted with
DeleteObjects, 1000 keys a call, by a pool of workers; single targets are deleted in parallel.
A removal that fails (a listing or delete error, files a backend could not remove: a permission,
a busy file, S3 throttling or a per-key DeleteObjects error) is tried again, `DELETE_ATTEMPTS` times
in all with a growing pause, for what is still there; then the item is reported and its rows stay,
so the next pass tries again. A failing item never stops the others: the report's `failures` says
which and why.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from trackops.artifacts.base import DeleteFailure, DeleteResult
from trackops.errors import TrackopsError
from trackops.services import gc_roots, gc_rows
from trackops.services.gc_plan import ArtifactTarget, GcItem, GcPlan, Places, files_by_target, group_targets

CHUNK_ITEMS = 500
DELETE_ATTEMPTS = 3
RETRY_PAUSE = 0.1  # seconds before the second attempt; four times that before the third
WORKERS = 8
ROOT_OF = {"run": "runs", "logged_model": "logged_models", "trace": "trace_info", "experiment": "experiments"}
PLURAL = {"run": "runs", "logged_model": "logged_models", "trace": "traces", "experiment": "experiments"}


@dataclasses.dataclass(frozen=True)
class GcEvent:
    """Progress: ``start`` (total items), ``advance`` (items done, files/bytes freed so far), ``done``."""

    kind: str
    total: int = 0
    advance: int = 0
    phase: str = ""
    files: int = 0
    bytes: int = 0


Progress = Callable[[GcEvent], None]


@dataclasses.dataclass(frozen=True)
class Failure:
    """An item (or orphaned prefix) that could not be deleted, and why; it is left for the next gc."""

    kind: str
    id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class GcReport:
    """What a gc did. ``to_json()`` (additive only): ``plan`` (see `GcPlan.to_json`), ``dry_run``,
    ``executed``, ``deleted`` (``{runs, logged_models, traces, experiments, orphans}`` counts),
    ``rows`` (``{table: rows}``), ``files``, ``bytes``, ``failures`` (``[{kind, id, reason}]``), ``seconds``."""

    plan: GcPlan
    dry_run: bool = False
    executed: bool = False
    deleted: dict[str, int] = dataclasses.field(default_factory=lambda: {k: 0 for k in (*PLURAL.values(), "orphans")})
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json(), "dry_run": self.dry_run, "executed": self.executed,
                "deleted": dict(self.deleted), "rows": dict(sorted(self.rows.items())), "files": self.files,
                "bytes": self.bytes, "failures": [f.to_json() for f in self.failures],
                "seconds": round(self.seconds, 3)}


class Executor:
    """Runs a `GcPlan` against the database engine and the artifact stores."""

    def __init__(self, engine: sa.Engine, places: Places, progress: Progress | None = None,
                 workers: int = WORKERS):
        self.engine, self.places, self.workers = engine, places, workers
        self.progress = progress or (lambda event: None)
        self.scanned = True
        self.roots: list[str] = []

    def run(self, plan: GcPlan, report: GcReport | None = None) -> GcReport:
        started = time.monotonic()
        report = report or GcReport(plan)
        self.scanned = plan.scanned
        self.roots = list(plan.roots)
        total = sum(1 for _ in plan.items()) + len(plan.orphans)
        self.progress(GcEvent("start", total=total))
        failed_experiments: dict[str, str] = {}
        for kind, items in (("run", plan.runs), ("logged_model", plan.logged_models),
                            ("trace", plan.traces), ("experiment", plan.experiments)):
            if kind == "experiment":
                items = self._drop_blocked(items, failed_experiments, report)
            # All files of this kind first (one listing per shared folder), then the rows of the
            # items whose files all went, chunk by chunk.
            errors = self._delete_artifacts(items, report)
            ready = []
            for item in items:
                if item.id in errors:
                    self._fail(report, item, errors[item.id], failed_experiments)
                    self._advance(report, 1)
                else:
                    ready.append(item)
            for chunk in gc_rows.chunks(ready, CHUNK_ITEMS):
                self._rows(kind, chunk, report, failed_experiments)
        self._orphans(plan.orphans, report)
        if not plan.scanned:
            plan.rows = dict(report.rows)
        report.executed = True
        report.seconds = time.monotonic() - started
        self.progress(GcEvent("done", files=report.files, bytes=report.bytes))
        return report

    # -- items ---------------------------------------------------------------------------------

    def _drop_blocked(self, chunk: Sequence[GcItem], failed: dict[str, str], report: GcReport) -> list[GcItem]:
        keep = []
        for item in chunk:
            if item.id in failed:
                report.failures.append(Failure("experiment", item.id, f"kept: {failed[item.id]}"))
                self._advance(report, 1)
            else:
                keep.append(item)
        return keep

    def _rows(self, kind: str, ready: Sequence[GcItem], report: GcReport, failed_experiments: dict[str, str]) -> None:
        root = ROOT_OF[kind]
        keys = [int(i.id) if kind == "experiment" else i.id for i in ready]
        try:
            self._count_rows(report, gc_rows.delete_rows(self.engine, root, keys))
            report.deleted[PLURAL[kind]] += len(ready)
        except (sa.exc.SQLAlchemyError, TrackopsError):
            # Find the item that fails, one at a time; the rest go on.
            for item, key in zip(ready, keys):
                try:
                    self._count_rows(report, gc_rows.delete_rows(self.engine, root, [key]))
                    report.deleted[PLURAL[kind]] += 1
                except (sa.exc.SQLAlchemyError, TrackopsError) as exc:
                    self._fail(report, item, f"database: {_one_line(exc)}", failed_experiments)
        self._advance(report, len(ready))

    def _fail(self, report: GcReport, item: GcItem, reason: str, failed_experiments: dict[str, str]) -> None:
        report.failures.append(Failure(item.kind, item.id, reason))
        if item.kind != "experiment" and item.experiment_id is not None:
            failed_experiments.setdefault(item.experiment_id, f"{item.kind.replace('_', ' ')} {item.id} failed")

    @staticmethod
    def _count_rows(report: GcReport, rows: dict[str, int]) -> None:
        for table, n in rows.items():
            report.rows[table] = report.rows.get(table, 0) + n

    def _advance(self, report: GcReport, n: int) -> None:
        self.progress(GcEvent("advance", advance=n, files=report.files, bytes=report.bytes))

    # -- files ---------------------------------------------------------------------------------

    def _delete_artifacts(self, chunk: Sequence[GcItem], report: GcReport) -> dict[str, str]:
        """Delete every target of the chunk's items; the items that failed, with a reason."""
        owner: dict[int, GcItem] = {}
        targets: list[ArtifactTarget] = []
        for item in chunk:
            for t in item.artifacts:
                owner[id(t)] = item
                targets.append(t)
        errors: dict[str, str] = {}
        # The plan only holds targets inside its roots; checked again here so that no path that
        # reached a plan some other way is ever deleted outside them.
        for t in [t for t in targets if not gc_roots.owned(t.uri, self.roots)]:
            targets.remove(t)
            errors.setdefault(owner[id(t)].id, f"refused: {t.uri} is outside the artifact roots")
        if not targets:
            return errors
        for target, outcome in self._delete_targets(targets, report):
            item = owner[id(target)]
            if isinstance(outcome, DeleteResult):
                report.files += outcome.files
                report.bytes += outcome.bytes
                if not self.scanned:
                    target.files, target.bytes = outcome.files, outcome.bytes
                if outcome.failures:
                    first = outcome.failures[0]
                    errors.setdefault(item.id, f"{len(outcome.failures)} file(s) not deleted under {target.uri}, "
                                               f"e.g. {first.path}: {first.reason}")
            else:
                errors.setdefault(item.id, f"artifacts at {target.uri}: {outcome}")
        return errors

    def _delete_targets(self, targets: Sequence[ArtifactTarget],
                        report: GcReport) -> Iterator[tuple[ArtifactTarget, DeleteResult | str]]:
        """Delete targets (grouped where one listing serves many); (target, result or error text) each."""
        try:
            groups = group_targets(targets, self.places)
        except TrackopsError as exc:
            yield from ((t, _one_line(exc)) for t in targets)
            return

        def one(group) -> list[tuple[ArtifactTarget, DeleteResult | str]]:
            parent, members = group

            def attempt(pending: Sequence[ArtifactTarget]) -> list[tuple[ArtifactTarget, DeleteResult | str]]:
                try:
                    repo = self.places.repo(pending[0].root)
                    if parent is None:
                        return [(pending[0], repo.delete_prefix(pending[0].path))]
                    return self._delete_grouped(repo, parent, pending)
                except TrackopsError as exc:
                    return [(t, _one_line(exc)) for t in pending]

            return retrying(attempt, members)

        def several(part: Sequence) -> list[tuple[ArtifactTarget, DeleteResult | str]]:
            return [result for group in part for result in one(group)]

        # Threads pay off on S3 (network waits) and locally too: unlink and rmdir release the GIL.
        # A task takes several groups: with thousands of small runs, one future per run would cost
        # more in scheduling than in deleting; a few tasks per worker still keep them all busy.
        size = max(1, len(groups) // (self.workers * 4))
        parts = [groups[i:i + size] for i in range(0, len(groups), size)]
        with ThreadPoolExecutor(self.workers if len(groups) > 1 else 1) as pool:
            for part in pool.map(several, parts):
                yield from part  # the caller adds each result to the report as it comes
                self.progress(GcEvent("advance", files=report.files, bytes=report.bytes))

    def _delete_grouped(self, repo, parent: str, members: Sequence[ArtifactTarget]):
        """One walk of `parent`, files routed to their target, deleted in batches (DeleteObjects on S3)."""
        per_target: dict[int, DeleteResult] = {id(t): DeleteResult() for t in members}
        batch: list = []
        batch_owner: list[int] = []

        def flush() -> None:
            if not batch:
                return
            result = repo.delete_files(batch)
            failed = {f.path: f.reason for f in result.failures}
            for entry, key in zip(batch, batch_owner):
                if entry.path in failed:
                    per_target[key] += DeleteResult(failures=(DeleteFailure(entry.path, failed[entry.path]),))
                else:
                    per_target[key] += DeleteResult(1, entry.size or 0)
            batch.clear()
            batch_owner.clear()

        for target, entry in files_by_target(repo, parent, members):
            batch.append(entry)
            batch_owner.append(id(target))
            if len(batch) >= 1000:
                flush()
        flush()
        return [(t, per_target[id(t)]) for t in members]

    # -- orphans -------------------------------------------------------------------------------

    def _orphans(self, orphans: Sequence[ArtifactTarget], report: GcReport) -> None:
        if not orphans:
            return
        for target in [t for t in orphans if not gc_roots.owned(t.uri, self.roots)]:
            orphans = [t for t in orphans if t is not target]
            report.failures.append(Failure("orphan", target.uri, "refused: outside the artifact roots"))
            self._advance(report, 1)
        if not orphans:
            return

        def attempt(pending: Sequence[ArtifactTarget]) -> list[tuple[ArtifactTarget, DeleteResult | str]]:
            try:
                return [(pending[0], self.places.repo(pending[0].root).delete_prefix(pending[0].path))]
            except TrackopsError as exc:
                return [(pending[0], _one_line(exc))]

        def one(target: ArtifactTarget):
            return retrying(attempt, [target])[0]

        with ThreadPoolExecutor(self.workers) as pool:
            for target, outcome in pool.map(one, orphans):
                if isinstance(outcome, DeleteResult):
                    report.files += outcome.files
                    report.bytes += outcome.bytes
                    if outcome.failures:
                        report.failures.append(Failure("orphan", target.uri,
                                                       f"{len(outcome.failures)} file(s) not deleted"))
                    else:
                        report.deleted["orphans"] += 1
                else:
                    report.failures.append(Failure("orphan", target.uri, outcome))
                self._advance(report, 1)


def retrying(attempt: Callable[[Sequence[ArtifactTarget]], list[tuple[ArtifactTarget, DeleteResult | str]]],
             targets: Sequence[ArtifactTarget], attempts: int | None = None,
             pause: float | None = None) -> list[tuple[ArtifactTarget, DeleteResult | str]]:
    """`attempt(targets)`, then again for the targets that failed, up to `attempts` times in all.

    What earlier attempts deleted is added up; a target that still fails keeps its last error, with
    the number of attempts in its reason.
    """
    attempts = DELETE_ATTEMPTS if attempts is None else attempts
    pause = RETRY_PAUSE if pause is None else pause
    done: dict[int, DeleteResult] = {id(t): DeleteResult() for t in targets}
    last: dict[int, DeleteResult | str] = {}
    pending = list(targets)
    for n in range(attempts):
        if n:
            time.sleep(pause * 4 ** (n - 1))
        failed = []
        for target, outcome in attempt(pending):
            if isinstance(outcome, DeleteResult):
                done[id(target)] += DeleteResult(outcome.files, outcome.bytes)
                if not outcome.failures:
                    last.pop(id(target), None)
                    continue
            last[id(target)] = outcome
            failed.append(target)
        if not failed:
            break
        pending = failed
    out: list[tuple[ArtifactTarget, DeleteResult | str]] = []
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    for target in targets:
        error = last.get(id(target))
        total = done[id(target)]
        if error is None:
            out.append((target, total))
        elif isinstance(error, DeleteResult):
            out.append((target, DeleteResult(total.files, total.bytes,
                                             tuple(DeleteFailure(f.path, f.reason + suffix) for f in error.failures))))
        else:
            out.append((target, error + suffix))
    return out


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]
