"""Finding orphaned artifact prefixes: folders in the artifact store that no row points to.

Where it looks (the "containers"): every experiment's artifact location, and the artifacts
destination. What it may take, and nothing else:

- in an experiment location: a run folder (a name of 32 hex digits) and a logged model folder
  (``models/m-<hex>``);
- in the artifacts destination: an experiment folder (a name of digits) that is not itself a
  container.

``traces/`` folders, and names of any other shape, are never taken. A candidate is an orphan when no
stored URI lies at or under it (runs' artifact URIs, logged models' and experiments' locations,
model versions' ``source`` / ``storage_location``, traces' ``mlflow.artifactLocation`` tag) and its
newest file is older than the cutoff, so uploads in flight are never touched.

The store is listed before the references are read: a folder that appears after the listing is not a
candidate, and one whose row appears before the read is referenced.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlalchemy as sa

from trackops.db import schema
from trackops.errors import TrackopsError
from trackops.services import gc_roots
from trackops.services.gc_plan import TRACE_LOCATION_TAG, ArtifactTarget, Places, scan

RUN_NAME = re.compile(r"^[0-9a-f]{32}$")
MODEL_NAME = re.compile(r"^m-[0-9a-f]+$")
EXPERIMENT_NAME = re.compile(r"^[0-9]+$")


def _references(conn: sa.Connection) -> Iterator[str]:
    """Every stored artifact URI (streamed)."""
    queries = [sa.select(schema.experiments.c.artifact_location),
               sa.select(schema.runs.c.artifact_uri),
               sa.select(schema.logged_models.c.artifact_location),
               sa.select(schema.model_versions.c.source),
               sa.select(schema.model_versions.c.storage_location),
               sa.select(schema.trace_tags.c.value).where(schema.trace_tags.c.key == TRACE_LOCATION_TAG)]
    for query in queries:
        for (uri,) in conn.execution_options(yield_per=10_000).execute(query):
            if uri:
                yield uri


def find_orphans(conn: sa.Connection, places: Places, *, cutoff_s: float,
                 errors: list[str] | None = None) -> list[ArtifactTarget]:
    """Orphaned run, logged model and experiment prefixes older than `cutoff_s` (epoch seconds)."""
    containers: dict[str, bool] = {}  # canonical URI -> is the artifacts destination (not a location)
    for (uri,) in conn.execute(sa.select(schema.experiments.c.artifact_location)):
        place = places.try_canonical(uri)
        if place:
            containers[place] = False
    destination = places.try_canonical(places.destination) if places.destination else None
    if destination and destination not in containers:
        containers[destination] = True
    # Only inside what gc owns: a location outside the artifact roots is never swept.
    roots = gc_roots.artifact_roots(conn, places)
    containers = {c: d for c, d in containers.items() if (d and c in roots) or gc_roots.owned(c, roots)}

    # 1. List first.
    candidates: dict[str, list[str]] = {}  # container -> candidate relative paths
    for container, is_destination in containers.items():
        try:
            repo = places.repo(container)
            names = [e.path for e in repo.list("") if e.is_dir]
            found = [n for n in names if (EXPERIMENT_NAME if is_destination else RUN_NAME).match(n)]
            if not is_destination and "models" in names:
                found += [e.path for e in repo.list("models") if e.is_dir
                          and MODEL_NAME.match(e.path.rsplit("/", 1)[-1])]
        except TrackopsError as exc:
            if errors is not None:
                errors.append(f"{container}: {exc.message}")
            continue
        if found:
            candidates[container] = found
    if not candidates:
        return []

    # 2. Then read what rows reference: the first segment (two under models/) inside each container.
    referenced: dict[str, set[str]] = {c: set() for c in candidates}
    for uri in _references(conn):
        place = places.try_canonical(uri)
        if place is None:
            continue
        # Every container that holds `place` (or that `place` holds: then all of it is referenced).
        head = place
        while True:
            if head in referenced and head != place:
                rest = place[len(head) + 1:].split("/")
                referenced[head].add("/".join(rest[:2]) if rest[0] == "models" and len(rest) > 1 else rest[0])
            if "/" not in head.split("://", 1)[-1]:
                break
            head = head.rsplit("/", 1)[0]
        for container in candidates:
            if container.startswith(place + "/") or container == place:
                referenced[container].add("*")

    orphans: list[ArtifactTarget] = []
    for container, names in candidates.items():
        refs = referenced[container]
        if "*" in refs and not containers[container]:
            # A stored URI points at the whole location: only its experiment row does, which is fine.
            refs = refs - {"*"}
        elif "*" in refs:
            continue
        for name in names:
            if name not in refs:
                orphans.append(ArtifactTarget(container, name))

    # 3. Size and age; young ones stay.
    scan(orphans, places)
    return [t for t in orphans if t.error is None and (t.newest is None or t.newest < cutoff_s)]
