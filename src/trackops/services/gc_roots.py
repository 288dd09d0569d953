"""What gc owns: its artifact roots, and the live artifact URIs its targets must never touch.

A row's artifact URI is data anyone with EDIT on an experiment could have chosen, so gc never trusts
it alone. Before a target (a folder gc plans to delete) stays in the plan it must:

1. lie strictly inside one of the **artifact roots**: the artifacts destination, the default artifact
   root gc was given, the ``default_artifact_root`` of a workspace row, and the folder MLflow's Default
   experiment (``0``) sits in (``<root>/0``, written by the server itself). A derived root that is a
   bucket or filesystem root is ignored; a target equal to a root is never deleted.
2. neither contain nor lie inside the artifact URI of a **live** row, one this gc does not delete:
   a run, a logged model, or another experiment (a member's folder may of course lie inside its own
   experiment's location).

The live check is set-based and touches only rows that could overlap: the stored spelling of a URI
inside a target contains the target's last path segment, and the stored spelling of a URI that holds
a target is one of the spellings of the target's ancestors. One query per table and chunk of targets
finds those candidates; they are then compared on canonical URIs. Standard member folders
(``<location>/<run_id>``, ``models/<id>``, ``traces/<id>``) cannot overlap a live row except through
their experiment's location, so only each such location is checked (whether it lies inside a live
run's or logged model's folder), not every member.

An item whose target fails keeps its files: its rows are still purged (the user deleted it), and the
plan lists it in ``held`` with a reason starting ``artifacts kept:``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from urllib.parse import quote

import sqlalchemy as sa

from trackops.db import schema

KEPT = "artifacts kept: "
OUTSIDE = KEPT + "outside the artifact root"
CHUNK = 50

# (table, key column, URI column, what it is called in a reason)
_LIVE = ((schema.runs, "run_uuid", "artifact_uri", "run"),
         (schema.logged_models, "model_id", "artifact_location", "logged model"),
         (schema.experiments, "experiment_id", "artifact_location", "experiment"))


def within(place: str, folder: str) -> bool:
    return place == folder or place.startswith(folder + "/")


def _is_store_root(place: str) -> bool:
    scheme, _, rest = place.partition("://")
    parts = [p for p in rest.split("/") if p]
    return len(parts) < (1 if scheme == "file" else 2)


def artifact_roots(conn: sa.Connection, places) -> list[str]:
    """The canonical roots gc may delete inside: given ones first, then those derived from the database."""
    roots: list[str] = []
    for uri in (places.destination, getattr(places, "default_artifact_root", None)):
        place = places.try_canonical(uri)
        if place and place not in roots:
            roots.append(place)
    derived = [row[0] for row in conn.execute(sa.select(schema.workspaces.c.default_artifact_root)
                                              .where(schema.workspaces.c.default_artifact_root.is_not(None)))]
    default = conn.execute(sa.select(schema.experiments.c.artifact_location)
                           .where(schema.experiments.c.experiment_id == 0)).scalar()
    for uri in derived:
        place = places.try_canonical(uri)
        if place and not _is_store_root(place) and place not in roots:
            roots.append(place)
    place = places.try_canonical(default)
    if place and place.endswith("/0"):
        parent = place[:-2]
        if not _is_store_root(parent) and parent not in roots:
            roots.append(parent)
    return roots


def owned(place: str, roots: Sequence[str]) -> bool:
    """True when `place` lies strictly inside one of the roots."""
    return any(place.startswith(root + "/") for root in roots)


def _spellings(place: str, places) -> set[str]:
    """Stored spellings that name exactly `place` (with and without a trailing slash)."""
    names = {place}
    if place.startswith("file://"):
        path = place[len("file://"):]
        names |= {path, "file:" + path, "file://localhost" + path}
        for p in (path, quote(path)):
            names |= {"file://" + p, p}
        cwd = os.getcwd()
        if within(path, cwd) and path != cwd:
            rel = path[len(cwd) + 1:]
            names |= {rel, "./" + rel}
    destination = places.try_canonical(places.destination) if places.destination else None
    if destination and within(place, destination):
        rel = place[len(destination) + 1:] if place != destination else ""
        names |= {"mlflow-artifacts:/" + rel, "mlflow-artifacts:" + rel}
    return names | {n + "/" for n in names if not n.endswith("/")}


def _ancestors(place: str) -> Iterable[str]:
    """`place` and each folder above it, up to the bucket or filesystem root."""
    while True:
        yield place
        scheme, _, rest = place.partition("://")
        if "/" not in rest.strip("/"):
            return
        place = place.rsplit("/", 1)[0]
        if place.endswith("://") or place == f"{scheme}://":
            return


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def live_overlaps(conn: sa.Connection, places, checks: Sequence[tuple[str, bool, str | None]],
                  doomed: dict[str, set[str]]) -> dict[str, str]:
    """For each check ``(place, both_ways, own_experiment)``, why a live row's URI overlaps it.

    ``both_ways``: also look for live URIs inside `place` (else only for live run/logged-model URIs
    that hold it). Rows whose key is in ``doomed[table]`` are being deleted and do not count; the
    experiment `own_experiment` may hold `place`.
    """
    found: dict[str, str] = {}
    unique = list(dict.fromkeys(checks))
    for part in (unique[i:i + CHUNK] for i in range(0, len(unique), CHUNK)):
        for table, key, column, label in _LIVE:
            col = table.c[column]
            exact: set[str] = set()
            patterns: set[str] = set()
            for place, both, _own in part:
                if not both and label == "experiment":
                    continue
                for ancestor in _ancestors(place):
                    exact |= _spellings(ancestor, places)
                if both:
                    seg = place.rstrip("/").rsplit("/", 1)[-1]
                    for s in {seg, quote(seg)}:
                        patterns |= {f"%/{_like(s)}/%", f"%/{_like(s)}", f"%:{_like(s)}/%", f"%:{_like(s)}"}
            if not exact and not patterns:
                continue
            where = sa.or_(col.in_(sorted(exact)), *(col.like(p, escape="\\") for p in sorted(patterns)))
            gone = doomed.get(table.name, set())
            for row in conn.execute(sa.select(table.c[key], col).where(where)):
                row_key = str(row[0])
                if row_key in gone:
                    continue
                live = places.try_canonical(row[1])
                if live is None:
                    continue
                for place, both, own in part:
                    if place in found:
                        continue
                    if label == "experiment":
                        if not both or row_key == own:
                            continue
                        if within(place, live):
                            found[place] = f"{KEPT}lies inside experiment {row_key}'s artifact location"
                        elif within(live, place):
                            found[place] = f"{KEPT}holds experiment {row_key}'s artifact location"
                    elif within(place, live):
                        found[place] = f"{KEPT}lies inside live {label} {row_key}'s artifacts"
                    elif both and within(live, place):
                        found[place] = f"{KEPT}holds live {label} {row_key}'s artifacts"
    return found


def confine(conn: sa.Connection, places, roots: Sequence[str], exp_target: dict,
            final_exps: Sequence[str], locations: dict[str, str | None], members: Sequence,
            doomed: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """Drop every target outside the roots or overlapping a live row: ``(kind, id, reason)`` each.

    The items stay in the plan (their rows are purged) without those targets; an experiment's is
    removed from `exp_target`, a member's from its ``artifacts``. Experiments go first, so members
    their location would have covered keep their own (checked) targets.
    """
    checks: list[tuple[str, bool, str | None]] = []
    for eid in final_exps:
        if eid in exp_target:
            checks.append((exp_target[eid].uri, True, eid))
    standard_locations: set[str] = set()
    for item in members:
        own = locations.get(item.experiment_id or "")
        for t in item.artifacts:
            regular = own is not None and t.root == own and t.path in (
                item.id, f"models/{item.id}", f"traces/{item.id}")
            if regular:
                standard_locations.add(own)
            else:
                checks.append((t.uri, True, item.experiment_id))
    checks += [(place, False, None) for place in sorted(standard_locations)]
    overlap = live_overlaps(conn, places, checks, doomed)

    def verdict(place: str) -> str | None:
        if not owned(place, roots):
            return f"{OUTSIDE} ({place})"
        return overlap.get(place)

    kept: list[tuple[str, str, str]] = []
    for eid in final_exps:
        if eid in exp_target:
            reason = verdict(exp_target[eid].uri)
            if reason:
                del exp_target[eid]
                kept.append(("experiment", eid, reason))
    for item in members:
        own = locations.get(item.experiment_id or "")
        reasons = []
        for t in item.artifacts:
            reason = verdict(t.uri) or (overlap.get(own) if own else None)
            if reason:
                reasons.append(reason)
        if reasons:
            item.artifacts = []
            kept.append((item.kind, item.id, reasons[0]))
    return kept

