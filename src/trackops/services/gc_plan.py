"""Planning a gc: what goes (runs, logged models, traces, experiments, their files), what is held and why.

Selection rules (docs/gc.md has the user-facing version):

- Without ids, every run, experiment and logged model in the ``deleted`` lifecycle stage is a candidate.
  With ``run_ids`` / ``experiment_ids`` / ``logged_model_ids``, only the items named are (each must exist
  and be deleted; anything else is held with the reason, never deleted).
- ``older_than``: a run must have been deleted (``deleted_time``) before ``now - older_than``, an
  experiment last updated (``last_update_time``) before it, a logged model last updated before it. A NULL
  time (runs deleted before MLflow recorded ``deleted_time``) is "age unknown": collected when no
  ``older_than`` is given, held otherwise.
- An experiment takes all its runs, logged models and traces with it, whatever their own stage.
- Registry-aware holds (lifted by ``force_registered``): a run whose files a model version's ``source``
  or ``storage_location`` points into (or ``runs:/<id>/...``), or that an active logged model came from
  or stores files in; a logged model a model version names (``models:/m-...``) or stores files in.
  An experiment with a held member is held (its other deleted runs are still collected one by one).
- Safety holds (never lifted): a run whose files are its experiment's whole location; an experiment
  whose location holds another experiment's location, or that a gateway guardrail depends on; a
  location that is a bucket or filesystem root; an artifact URI whose scheme trackops cannot delete.

Files are planned as targets (repository root + relative path): a run's whole ``<run_id>/`` folder (so
no empty folder is left), a logged model's ``models/<id>/`` folder, a trace's ``traces/<id>/`` folder,
and an experiment's whole location. Members whose folder lies inside a collected experiment's location
are covered by the experiment's target.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from trackops.artifacts.base import ArtifactRepository
from trackops.artifacts.registry import repository_for
from trackops.artifacts.s3 import S3ArtifactRepository
from trackops.db import schema
from trackops.errors import TrackopsError, UsageError
from trackops.services import gc_roots, gc_rows

DELETED = "deleted"
TRACE_LOCATION_TAG = "mlflow.artifactLocation"
# Group targets under one folder and list the folder once (S3) when there are at least this many
# of them and they make up at least a quarter of the folder's children.
GROUP_MIN = 8

_AGE = re.compile(r"^(?:(?P<weeks>\d+(?:\.\d+)?)w)?(?:(?P<days>\d+(?:\.\d+)?)d)?(?:(?P<hours>\d+(?:\.\d+)?)h)?"
                  r"(?:(?P<minutes>\d+(?:\.\d+)?)m)?(?:(?P<seconds>\d+(?:\.\d+)?)s)?$")
_PLAIN_TAIL = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)?$")
_UNIT_MS = {"weeks": 604_800_000, "days": 86_400_000, "hours": 3_600_000, "minutes": 60_000, "seconds": 1000}


def parse_age(text: str) -> int:
    """Milliseconds in an age such as ``30d``, ``12h``, ``90m``, ``1w``, ``45s`` or MLflow's ``1d2h3m4s``."""
    value = (text or "").strip().lower()
    match = _AGE.match(value) if value else None
    if value == "0":
        return 0
    if match is None or not any(match.groupdict().values()):
        raise UsageError(f"cannot read the age {text!r}",
                         hint="use a number with a unit: 30d, 12h, 90m, 1w, 45s, or combined like 1d2h3m4s")
    return int(sum(float(v) * _UNIT_MS[k] for k, v in match.groupdict().items() if v))


def interval_seconds(interval: str) -> float:
    """Seconds between background gc passes for an age such as ``1h``; zero is a usage error too."""
    ms = parse_age(interval)
    if ms <= 0:
        raise UsageError(f"gc interval {interval!r} must be longer than zero", hint="e.g. --gc-interval 1h")
    return ms / 1000


def now_ms() -> int:
    return int(time.time() * 1000)


# --- plan entities ---------------------------------------------------------------------------


@dataclasses.dataclass
class ArtifactTarget:
    """A folder (or file) to delete: `path` inside the repository rooted at `root` (a canonical URI)."""

    root: str
    path: str
    files: int = 0
    bytes: int = 0
    newest: float | None = None  # newest file's modification time (seconds), when known
    error: str | None = None  # why it could not be listed while planning (execution will retry)

    @property
    def uri(self) -> str:
        return f"{self.root}/{self.path}" if self.path else self.root

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"uri": self.uri, "files": self.files, "bytes": self.bytes}
        if self.error:
            data["error"] = self.error
        return data


@dataclasses.dataclass
class GcItem:
    """One run, logged model, trace or experiment that will be deleted, with its artifact targets."""

    kind: str  # "run" | "logged_model" | "trace" | "experiment"
    id: str
    experiment_id: str | None = None
    artifacts: list[ArtifactTarget] = dataclasses.field(default_factory=list)
    covered_by: str | None = None  # experiment id whose location target holds this item's files

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "experiment_id": self.experiment_id,
                                "artifacts": [t.to_json() for t in self.artifacts]}
        if self.covered_by is not None:
            data["artifacts_in_experiment"] = self.covered_by
        return data


@dataclasses.dataclass(frozen=True)
class Held:
    """An item gc will not delete, and why."""

    kind: str
    id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class GcPlan:
    """Everything one gc will delete, and everything it holds back. `execute` runs it once.

    ``to_json()`` shape (additive only): ``database``, ``older_than``, ``cutoff_ms``, ``runs``,
    ``logged_models``, ``traces``, ``experiments`` (lists of ``{id, experiment_id, artifacts: [{uri,
    files, bytes}]}``), ``orphans`` (``[{uri, files, bytes}]``), ``held`` (``[{kind, id, reason}]``),
    ``rows`` (``{table: count}``; ``"<table> (null)"`` counts keys set to NULL), ``totals``,
    ``roots`` (the canonical artifact roots gc may delete inside).
    """

    database: str
    older_than: str | None
    cutoff_ms: int | None
    runs: list[GcItem] = dataclasses.field(default_factory=list)
    logged_models: list[GcItem] = dataclasses.field(default_factory=list)
    traces: list[GcItem] = dataclasses.field(default_factory=list)
    experiments: list[GcItem] = dataclasses.field(default_factory=list)
    orphans: list[ArtifactTarget] = dataclasses.field(default_factory=list)
    held: list[Held] = dataclasses.field(default_factory=list)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    orphan_cutoff_ms: int | None = None
    roots: list[str] = dataclasses.field(default_factory=list)  # where gc may delete (gc_roots)
    # False when the item targets were not listed while planning (gc --yes): their files and bytes
    # are then filled in by the deletion itself, so the store is listed once, not twice.
    scanned: bool = True

    def items(self) -> Iterable[GcItem]:
        yield from self.runs
        yield from self.logged_models
        yield from self.traces
        yield from self.experiments

    @property
    def files(self) -> int:
        return sum(t.files for i in self.items() for t in i.artifacts) + sum(t.files for t in self.orphans)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for i in self.items() for t in i.artifacts) + sum(t.bytes for t in self.orphans)

    @property
    def empty(self) -> bool:
        return not any(True for _ in self.items()) and not self.orphans

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database, "older_than": self.older_than, "cutoff_ms": self.cutoff_ms,
            "runs": [i.to_json() for i in self.runs],
            "logged_models": [i.to_json() for i in self.logged_models],
            "traces": [i.to_json() for i in self.traces],
            "experiments": [i.to_json() for i in self.experiments],
            "orphans": [t.to_json() for t in self.orphans],
            "held": [h.to_json() for h in self.held],
            "roots": list(self.roots),
            "rows": dict(sorted(self.rows.items())),
            "totals": {"runs": len(self.runs), "logged_models": len(self.logged_models),
                       "traces": len(self.traces), "experiments": len(self.experiments),
                       "orphans": len(self.orphans), "held": len(self.held),
                       "rows": sum(v for k, v in self.rows.items() if "(" not in k),
                       "files": self.files, "bytes": self.bytes},
        }


# --- where files are: canonical URIs ---------------------------------------------------------


class Places:
    """Canonical URIs for stored artifact URIs, and repositories for canonical roots (cached)."""

    def __init__(self, artifacts_destination: str | None, default_artifact_root: str | None = None):
        self.destination = artifacts_destination
        self.default_artifact_root = default_artifact_root
        self._repos: dict[str, ArtifactRepository] = {}
        self._prefixes: dict[str, str | None] = {}

    def canonical(self, uri: str) -> str:
        """``file:///abs/path`` or ``s3://bucket/prefix`` for any stored spelling; UsageError if unusable."""
        # Thousands of run URIs share their experiment's prefix: resolve the prefix once and append
        # the plain tail (``<run_id>/artifacts``), which every spelling keeps as it is.
        head, _, tail = uri.rstrip("/").rpartition("/")
        head2, _, tail2 = head.rpartition("/")
        for prefix, rest in ((head2, f"{tail2}/{tail}"), (head, tail)):
            if prefix and _PLAIN_TAIL.match(rest):
                if prefix not in self._prefixes:
                    try:
                        self._prefixes[prefix] = self._resolve(prefix)
                    except TrackopsError:
                        self._prefixes[prefix] = None
                if self._prefixes[prefix] is not None:
                    return f"{self._prefixes[prefix]}/{rest}"
        return self._resolve(uri)

    def _resolve(self, uri: str) -> str:
        return repository_for(uri, artifacts_destination=self.destination).uri.rstrip("/")

    def try_canonical(self, uri: str | None) -> str | None:
        if not uri:
            return None
        try:
            return self.canonical(uri)
        except TrackopsError:
            return None

    def repo(self, root: str) -> ArtifactRepository:
        if root not in self._repos:
            self._repos[root] = repository_for(root)
        return self._repos[root]


def within(place: str, folder: str) -> bool:
    return place == folder or place.startswith(folder + "/")


def split_parent(place: str) -> tuple[str, str] | None:
    """(parent, name) of a canonical URI, or None for a bucket or filesystem root (never a target)."""
    scheme, _, rest = place.partition("://")
    parts = rest.split("/")
    minimum = 3 if scheme == "file" else 2  # file:///a/b -> ["", "a", "b"]; s3://bucket/a -> ["bucket", "a"]
    if len(parts) < minimum or not parts[-1]:
        return None
    return place.rsplit("/", 1)[0], parts[-1]


def member_target(place: str, member_id: str, experiment_location: str | None = None) -> ArtifactTarget | None:
    """A member's folder: ``.../<id>/artifacts`` -> the ``<id>`` folder; else the URI itself.

    Inside its experiment's location the target is rooted there, so that the folders a delete
    empties (``models/``, ``traces/``) are removed up to the location.
    """
    base = place
    marker = f"/{member_id}/"
    cut = (place + "/").find(marker)
    if cut >= 0:
        base = place[:cut + len(marker) - 1]
    if experiment_location and base.startswith(experiment_location + "/"):
        return ArtifactTarget(experiment_location, base[len(experiment_location) + 1:])
    parent = split_parent(base)
    return None if parent is None else ArtifactTarget(parent[0], parent[1])


class Protected:
    """Canonical places that must survive, each with a reason; `inside(t)` finds one inside folder t."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, str, bool]] = []
        self._sorted = True

    def add(self, place: str | None, reason: str, forceable: bool) -> None:
        if place:
            self._entries.append((place, reason, forceable))
            self._sorted = False

    def inside(self, folder: str, *, force: bool) -> str | None:
        """The reason of a place at `folder` or under it (forceable ones skipped with `force`), or None."""
        if not self._sorted:
            self._entries.sort()
            self._sorted = True
        # Matches are `folder` itself, then the block starting with "folder/" (names like
        # "folder-x" sort between the two, so each block is found by its own bisection).
        for prefix, exact in ((folder, True), (folder + "/", False)):
            j = bisect.bisect_left(self._entries, (prefix,))
            while j < len(self._entries):
                place, reason, forceable = self._entries[j]
                if (place != folder) if exact else not place.startswith(prefix):
                    break
                if not (force and forceable):
                    return reason
                j += 1
        return None


# --- planning ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Selection:
    """What the user asked for."""

    older_than: str | None = None
    run_ids: Sequence[str] | None = None
    experiment_ids: Sequence[str] | None = None
    logged_model_ids: Sequence[str] | None = None
    force_registered: bool = False
    # Deleted runs to leave out of an unnamed plan: the background cleaner's batches already tried them.
    skip_runs: frozenset[str] = frozenset()

    @property
    def named(self) -> bool:
        return bool(self.run_ids or self.experiment_ids or self.logged_model_ids)


def _age_hold(stamp: int | None, cutoff: int | None, what: str) -> str | None:
    if cutoff is None:
        return None
    if stamp is None:
        return f"{what} unknown (NULL): cannot tell whether it is older than the cutoff"
    if stamp > cutoff:
        return f"{what} is newer than the cutoff"
    return None


def _named_hold(row, stamp_field: str, cutoff: int | None, what: str) -> str | None:
    """Why an item named on the command line is held (missing, not deleted, too young), or None."""
    if row is None:
        return "not found"
    if row.lifecycle_stage != DELETED:
        return f"not in the deleted stage ({row.lifecycle_stage})"
    return _age_hold(getattr(row, stamp_field), cutoff, what)


def build_plan(conn: sa.Connection, places: Places, selection: Selection, *, database: str,
               now: int | None = None, scan_files: bool = True) -> GcPlan:
    """Select items, apply the holds, find their artifact targets and count their rows."""
    now = now_ms() if now is None else now
    cutoff = None if selection.older_than is None else now - parse_age(selection.older_than)
    plan = GcPlan(database=database, older_than=selection.older_than, cutoff_ms=cutoff)
    force = selection.force_registered
    runs_t, exps_t, lms_t = schema.runs, schema.experiments, schema.logged_models
    mv_t, tags_t = schema.model_versions, schema.trace_tags

    # Every experiment's location: to plan targets, and to protect the ones that stay.
    locations: dict[str, str | None] = {}
    exp_rows: dict[str, sa.Row] = {}
    for row in conn.execute(sa.select(exps_t.c.experiment_id, exps_t.c.artifact_location,
                                      exps_t.c.lifecycle_stage, exps_t.c.last_update_time)):
        exp_rows[str(row.experiment_id)] = row
        locations[str(row.experiment_id)] = places.try_canonical(row.artifact_location)

    # 1. Candidate experiments.
    exp_candidates: list[str] = []
    if selection.experiment_ids:
        for eid in dict.fromkeys(str(e) for e in selection.experiment_ids):
            row = exp_rows.get(eid)
            reason = _named_hold(row, "last_update_time", cutoff, "last_update_time")
            if reason:
                plan.held.append(Held("experiment", eid, reason))
            else:
                exp_candidates.append(eid)
    elif not selection.named:
        for eid, row in exp_rows.items():
            if row.lifecycle_stage == DELETED:
                reason = _age_hold(row.last_update_time, cutoff, "last_update_time")
                if reason:
                    plan.held.append(Held("experiment", eid, reason))
                else:
                    exp_candidates.append(eid)

    # 2. Candidate runs: named, or all deleted ones, plus every run of a candidate experiment.
    run_info: dict[str, tuple[str, str | None, str, int | None]] = {}  # id -> (exp, uri, stage, deleted_time)
    standalone: list[str] = []
    cols = (runs_t.c.run_uuid, runs_t.c.experiment_id, runs_t.c.artifact_uri, runs_t.c.lifecycle_stage,
            runs_t.c.deleted_time)
    if selection.run_ids:
        wanted = list(dict.fromkeys(selection.run_ids))
        found = {}
        for part in gc_rows.chunks(wanted):
            for r in conn.execute(sa.select(*cols).where(runs_t.c.run_uuid.in_(part))):
                found[r.run_uuid] = r
        for rid in wanted:
            r = found.get(rid)
            reason = _named_hold(r, "deleted_time", cutoff, "deleted_time")
            if reason:
                plan.held.append(Held("run", rid, reason))
            else:
                run_info[rid] = (str(r.experiment_id), r.artifact_uri, r.lifecycle_stage, r.deleted_time)
                standalone.append(rid)
    elif not selection.named:
        for r in conn.execute(sa.select(*cols).where(runs_t.c.lifecycle_stage == DELETED)):
            if r.run_uuid in selection.skip_runs:
                continue
            reason = _age_hold(r.deleted_time, cutoff, "deleted_time")
            if reason:
                if str(r.experiment_id) not in exp_candidates:
                    plan.held.append(Held("run", r.run_uuid, reason))
                continue
            run_info[r.run_uuid] = (str(r.experiment_id), r.artifact_uri, r.lifecycle_stage, r.deleted_time)
            standalone.append(r.run_uuid)
    members: dict[str, list[str]] = {e: [] for e in exp_candidates}
    qualifies = set(standalone)  # collected on their own, even if their experiment is held
    for part in gc_rows.chunks(exp_candidates):
        for r in conn.execute(sa.select(*cols).where(runs_t.c.experiment_id.in_([int(e) for e in part]))):
            run_info[r.run_uuid] = (str(r.experiment_id), r.artifact_uri, r.lifecycle_stage, r.deleted_time)
            members[str(r.experiment_id)].append(r.run_uuid)
            if r.lifecycle_stage == DELETED and not _age_hold(r.deleted_time, cutoff, "deleted_time"):
                qualifies.add(r.run_uuid)

    # 3. Candidate logged models, the same way.
    lm_cols = (lms_t.c.model_id, lms_t.c.experiment_id, lms_t.c.artifact_location, lms_t.c.lifecycle_stage,
               lms_t.c.last_updated_timestamp_ms, lms_t.c.source_run_id)
    lm_info: dict[str, tuple[str, str | None]] = {}
    lm_standalone: list[str] = []
    if selection.logged_model_ids:
        wanted = list(dict.fromkeys(selection.logged_model_ids))
        found = {r.model_id: r for part in gc_rows.chunks(wanted)
                 for r in conn.execute(sa.select(*lm_cols).where(lms_t.c.model_id.in_(part)))}
        for mid in wanted:
            r = found.get(mid)
            reason = _named_hold(r, "last_updated_timestamp_ms", cutoff, "last update time")
            if reason:
                plan.held.append(Held("logged_model", mid, reason))
            else:
                lm_info[mid] = (str(r.experiment_id), r.artifact_location)
                lm_standalone.append(mid)
    elif not selection.named:
        for r in conn.execute(sa.select(*lm_cols).where(lms_t.c.lifecycle_stage == DELETED)):
            if str(r.experiment_id) in members:
                continue
            reason = _age_hold(r.last_updated_timestamp_ms, cutoff, "last update time")
            if reason:
                plan.held.append(Held("logged_model", r.model_id, reason))
            else:
                lm_info[r.model_id] = (str(r.experiment_id), r.artifact_location)
                lm_standalone.append(r.model_id)
    lm_qualifies = set(lm_standalone)
    for part in gc_rows.chunks(exp_candidates):
        for r in conn.execute(sa.select(*lm_cols).where(lms_t.c.experiment_id.in_([int(e) for e in part]))):
            lm_info[r.model_id] = (str(r.experiment_id), r.artifact_location)
            if r.lifecycle_stage == DELETED and not _age_hold(r.last_updated_timestamp_ms,
                                                             cutoff, "last update time"):
                lm_qualifies.add(r.model_id)

    # 4. What must survive: registry references, live logged models, the other experiments' locations.
    protected = Protected()
    run_refs: dict[str, str] = {}    # run id -> forceable reason (runs:/ sources, live logged models)
    model_refs: dict[str, str] = {}  # logged model id -> forceable reason
    for mv in conn.execute(sa.select(mv_t.c.name, mv_t.c.version, mv_t.c.source, mv_t.c.storage_location)):
        reason = f"model version {mv.name} v{mv.version} uses its files"
        for uri in (mv.source, mv.storage_location):
            if not uri:
                continue
            if uri.startswith("runs:/"):
                run_refs.setdefault(uri[len("runs:/"):].split("/", 1)[0], reason)
            elif uri.startswith("models:/"):
                ref = uri[len("models:/"):].split("/", 1)[0]
                if ref.startswith("m-"):
                    model_refs.setdefault(ref, reason)
            else:
                protected.add(places.try_canonical(uri), reason, True)
    collected_models = set(lm_info)
    for lm in conn.execute(sa.select(lms_t.c.model_id, lms_t.c.artifact_location, lms_t.c.source_run_id)
                           .where(lms_t.c.lifecycle_stage != DELETED)):
        if lm.model_id in collected_models:
            continue
        reason = f"logged model {lm.model_id} (active) "
        if lm.source_run_id:
            run_refs.setdefault(lm.source_run_id, reason + "was produced by it")
        protected.add(places.try_canonical(lm.artifact_location), reason + "stores files in it", True)
    for eid, place in locations.items():
        if eid not in members:
            protected.add(place, f"experiment {eid}'s artifact location lies inside it", False)

    # 5. Experiments: their own target and their guards; a held member holds the experiment.
    exp_target: dict[str, ArtifactTarget] = {}
    exp_hold: dict[str, str] = {}
    for eid in exp_candidates:
        place = locations.get(eid)
        raw = exp_rows[eid].artifact_location
        parent = split_parent(place) if place else None
        if place is None:
            exp_hold[eid] = f"artifact location {raw!r} cannot be resolved or deleted by trackops"
        elif parent is None:
            exp_hold[eid] = f"artifact location {place} is a bucket or filesystem root"
        elif places.destination and place == places.try_canonical(places.destination):
            exp_hold[eid] = "artifact location is the whole artifacts destination"
        else:
            reason = protected.inside(place, force=force)
            if reason:
                exp_hold[eid] = reason
            else:
                exp_target[eid] = ArtifactTarget(*parent)
        guards = gc_rows.guarded(conn, "experiments", int(eid))
        if guards:
            exp_hold[eid] = f"rows in {', '.join(guards)} (gateway configuration) depend on it"

    def hold_member(kind: str, mid: str, exp: str, reason: str) -> None:
        plan.held.append(Held(kind, mid, reason))
        if exp in members and exp not in exp_hold:
            exp_hold[exp] = f"{kind.replace('_', ' ')} {mid} is held: {reason}"

    def member_item(kind: str, mid: str, exp: str, uri: str | None, refs: dict[str, str]) -> GcItem | None:
        if not force and mid in refs:
            hold_member(kind, mid, exp, refs[mid])
            return None
        place = places.try_canonical(uri) if uri else None
        if uri and place is None:
            hold_member(kind, mid, exp, f"artifact URI {uri!r} cannot be resolved or deleted by trackops")
            return None
        item = GcItem(kind, mid, exp)
        if place is None:
            return item
        own = locations.get(exp)
        target = member_target(place, mid, own)
        if target is None or (own and within(own, target.uri)):
            hold_member(kind, mid, exp, f"its artifact URI {uri} is its experiment's whole location")
            return None
        reason = protected.inside(target.uri, force=force)
        if reason:
            hold_member(kind, mid, exp, reason)
            return None
        item.artifacts.append(target)
        return item

    run_items = {rid: member_item("run", rid, run_info[rid][0], run_info[rid][1], run_refs) for rid in run_info}
    lm_items = {mid: member_item("logged_model", mid, lm_info[mid][0], lm_info[mid][1], model_refs)
                for mid in lm_info}

    # A held experiment keeps its members, except its deleted runs that qualify on their own.
    final_exps = [e for e in exp_candidates if e not in exp_hold]
    for eid in exp_candidates:
        if eid in exp_hold:
            plan.held.append(Held("experiment", eid, exp_hold[eid]))
    held_exps = {e for e in exp_candidates if e in exp_hold}
    keep_runs = [r for r, item in run_items.items()
                 if item is not None and (run_info[r][0] not in held_exps or r in qualifies)]
    keep_models = [m for m, item in lm_items.items()
                   if item is not None and (lm_info[m][0] not in held_exps or m in lm_qualifies)]

    # 6. Traces of collected experiments.
    traces_t = schema.trace_info
    trace_items: list[GcItem] = []
    for part in gc_rows.chunks(final_exps):
        query = (sa.select(traces_t.c.request_id, traces_t.c.experiment_id, tags_t.c.value)
                 .select_from(traces_t.outerjoin(tags_t, sa.and_(tags_t.c.request_id == traces_t.c.request_id,
                                                                 tags_t.c.key == TRACE_LOCATION_TAG)))
                 .where(traces_t.c.experiment_id.in_([int(e) for e in part])))
        for t in conn.execute(query):
            item = GcItem("trace", t.request_id, str(t.experiment_id))
            place = places.try_canonical(t.value)
            target = member_target(place, t.request_id, locations.get(str(t.experiment_id))) if place else None
            if target is not None:
                item.artifacts.append(target)
            trace_items.append(item)

    # 7. Only what gc owns: targets inside the artifact roots that overlap no live row (gc_roots).
    plan.roots = gc_roots.artifact_roots(conn, places)
    doomed = {"runs": set(keep_runs), "logged_models": set(keep_models), "experiments": set(final_exps)}
    kept = set()
    for kind, key, reason in gc_roots.confine(
            conn, places, plan.roots, exp_target, final_exps, locations,
            [run_items[r] for r in keep_runs] + [lm_items[m] for m in keep_models] + trace_items, doomed):
        plan.held.append(Held(kind, key, reason))
        kept.add((kind, key))

    # 8. Experiment-wide targets cover the members inside them.
    for eid in final_exps:
        plan.experiments.append(GcItem("experiment", eid, eid, [exp_target[eid]] if eid in exp_target else []))
    for item in [run_items[r] for r in keep_runs] + [lm_items[m] for m in keep_models] + trace_items:
        if item.experiment_id in exp_target and item.experiment_id in final_exps and (item.kind, item.id) not in kept:
            if all(within(t.uri, exp_target[item.experiment_id].uri) for t in item.artifacts):
                item.artifacts, item.covered_by = [], item.experiment_id
    plan.runs = [run_items[r] for r in keep_runs]
    plan.logged_models = [lm_items[m] for m in keep_models]
    plan.traces = trace_items

    # 9. Rows and files (counted here only when someone will look before the deletion).
    plan.scanned = scan_files
    if scan_files:
        for root, items in (("runs", plan.runs), ("logged_models", plan.logged_models),
                            ("trace_info", plan.traces), ("experiments", plan.experiments)):
            keys = [int(i.id) if root == "experiments" else i.id for i in items]
            for table, n in gc_rows.count_rows(conn, root, keys).items():
                plan.rows[table] = plan.rows.get(table, 0) + n
        scan([t for i in plan.items() for t in i.artifacts], places)
    return plan


# --- counting files -----------------------------------------------------------------------------


def group_targets(targets: Sequence[ArtifactTarget], places: Places) -> list[tuple[str, list[ArtifactTarget]]]:
    """Targets grouped by (root, parent folder) where listing that folder once is cheaper (S3 only).

    Returns (parent, targets) pairs; a parent of None means "one listing per target".
    """
    by_parent: dict[tuple[str, str], list[ArtifactTarget]] = {}
    for t in targets:
        parent = t.path.rsplit("/", 1)[0] if "/" in t.path else ""
        by_parent.setdefault((t.root, parent), []).append(t)
    groups: list[tuple[str | None, list[ArtifactTarget]]] = []
    singles: list[ArtifactTarget] = []
    for (root, parent), members in by_parent.items():
        repo = places.repo(root)
        try:
            grouped = isinstance(repo, S3ArtifactRepository) and len(members) >= GROUP_MIN \
                and len(members) * 4 >= sum(1 for e in repo.list(parent) if e.is_dir)
        except TrackopsError:
            grouped = False  # listing failed: each target reports its own error
        if grouped:
            groups.append((parent, members))
        else:
            singles.extend(members)
    return groups + [(None, [t]) for t in singles]  # type: ignore[return-value]


def files_by_target(repo: ArtifactRepository, parent: str, members: Sequence[ArtifactTarget]):
    """Walk `parent` once and yield (target, file entry) for the files inside one of `members`."""
    names = {t.path.rsplit("/", 1)[-1]: t for t in members}
    depth = 0 if not parent else parent.count("/") + 1
    for entry in repo.walk(parent):
        segment = entry.path.split("/")[depth]
        target = names.get(segment)
        if target is not None and within(entry.path, target.path):
            yield target, entry


def scan(targets: Sequence[ArtifactTarget], places: Places, workers: int = 8) -> None:
    """Fill files, bytes and newest of each target (S3 listings in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    def count(group: tuple[str | None, list[ArtifactTarget]]) -> None:
        parent, members = group
        try:
            repo = places.repo(members[0].root)
            pairs = files_by_target(repo, parent, members) if parent is not None else \
                ((members[0], e) for e in repo.walk(members[0].path))
            for target, entry in pairs:
                target.files += 1
                target.bytes += entry.size or 0
                if entry.modified is not None and (target.newest is None or entry.modified > target.newest):
                    target.newest = entry.modified
        except TrackopsError as exc:
            for target in members:
                target.error = exc.message

    try:
        groups = group_targets(targets, places)
    except TrackopsError:
        groups = [(None, [t]) for t in targets]
    if len(groups) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(count, groups))
    else:
        for g in groups:
            count(g)
