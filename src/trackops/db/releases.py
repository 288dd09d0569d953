"""Which MLflow release expects which schema revision, and which release first shipped each revision.

Facts read from the releases' own packages (the migration scripts inside every published ``mlflow``
wheel or sdist from 1.0.0 to 3.18.0, yanked ones included); this module is data, nothing is fetched
at run time. Releases before 1.0.0 have no revision: they use the bare 0.9.1 tables.

`resolve_target` turns what a user types after ``--to`` (a revision id, ``head`` or an MLflow version
such as ``2.12.2``) into a revision id.
"""

from __future__ import annotations

import re

from trackops.errors import UsageError

# Every release that changed the schema -> the head revision it (and every later release up to the
# next entry) expects.
SCHEMA_RELEASES: dict[str, str] = {
    "1.0.0": "90e64c465722",
    "1.1.0": "181f10493468",
    "1.2.0": "7ac759974ad8",
    "1.3.0": "89d4b8295536",
    "1.4.0": "2b4d017a5e9b",
    "1.5.0": "cfd24bdc0731",
    "1.6.0": "0a8213491aaa",
    "1.10.0": "27a6a02d2cf1",
    "1.11.0": "84291f40a231",
    "1.13": "a8c4a736bde6",
    "1.15.0": "39d1c3be5f05",
    "1.16.0": "c48cb773bb87",
    "1.25.0": "bd07f7e963c5",
    "1.28.0": "cc1f77228345",
    "1.29.0": "97727af70f4d",
    "2.3.0": "3500859a5d39",
    "2.4.0": "7f2a7d5fae7d",
    "2.8.0": "acf3f17fdcc7",
    "2.13.0": "867495a8f9d4",
    "2.13.1": "5b0e9adcef9c",
    "2.15.0": "4465047574b1",
    "2.17.0": "f5a4f2784254",
    "2.18.0": "0584bdc529eb",
    "3.0.0": "6953534de441",
    "3.0.1": "bda7b8c39065",
    "3.2.0": "770bee3ae1dd",
    "3.3.0": "1a0cddfcaa16",
    "3.4.0": "71994744cf8e",
    "3.5.0": "bf29a5ff90ea",
    "3.8.0": "1bd49d398cd23",
    "3.9.0": "d3e4f5a6b7c8",
    "3.10.0": "1b5f0d9ad7c1",
    "3.11.0": "c3d6457b6d8a",
    "3.12.0": "7d34483879f0",
    "3.13.0": "da6fb0208061",
    "3.14.0": "b7e4c1a90f23",
    "3.15.0": "6f8d9c3b2a1e",
    "3.16.0": "b7e2c1a4d9f3",
    "3.17.0": "dc11669786a5",
    "3.18.0": "f4a9b2c7d1e6",
}
REVISION_FIRST_RELEASE: dict[str, str] = {
    "451aebb31d03": "1.0.0",
    "90e64c465722": "1.0.0",
    "181f10493468": "1.1.0",
    "df50e92ffc5e": "1.2.0",
    "7ac759974ad8": "1.2.0",
    "89d4b8295536": "1.3.0",
    "2b4d017a5e9b": "1.4.0",
    "cfd24bdc0731": "1.5.0",
    "0a8213491aaa": "1.6.0",
    "728d730b5ebd": "1.10.0",
    "27a6a02d2cf1": "1.10.0",
    "84291f40a231": "1.11.0",
    "a8c4a736bde6": "1.13",
    "39d1c3be5f05": "1.15.0",
    "c48cb773bb87": "1.16.0",
    "bd07f7e963c5": "1.25.0",
    "0c779009ac13": "1.28.0",
    "cc1f77228345": "1.28.0",
    "97727af70f4d": "1.29.0",
    "3500859a5d39": "2.3.0",
    "7f2a7d5fae7d": "2.4.0",
    "2d6e25af4d3e": "2.8.0",
    "acf3f17fdcc7": "2.8.0",
    "867495a8f9d4": "2.13.0",
    "5b0e9adcef9c": "2.13.1",
    "4465047574b1": "2.15.0",
    "f5a4f2784254": "2.17.0",
    "0584bdc529eb": "2.18.0",
    "400f98739977": "3.0.0",
    "6953534de441": "3.0.0",
    "bda7b8c39065": "3.0.1",
    "cbc13b556ace": "3.2.0",
    "770bee3ae1dd": "3.2.0",
    "a1b2c3d4e5f6": "3.3.0",
    "de4033877273": "3.3.0",
    "1a0cddfcaa16": "3.3.0",
    "534353b11cbc": "3.4.0",
    "71994744cf8e": "3.4.0",
    "3da73c924c2f": "3.5.0",
    "bf29a5ff90ea": "3.5.0",
    "1bd49d398cd23": "3.8.0",
    "b7c8d9e0f1a2": "3.9.0",
    "5d2d30f0abce": "3.9.0",
    "c9d4e5f6a7b8": "3.9.0",
    "2c33131f4dae": "3.9.0",
    "d3e4f5a6b7c8": "3.9.0",
    "d0e1f2a3b4c5": "3.10.0",
    "c8d9e0f1a2b3": "3.10.0",
    "1b5f0d9ad7c1": "3.10.0",
    "e1f2a3b4c5d6": "3.11.0",
    "76601a5f987d": "3.11.0",
    "c3d6457b6d8a": "3.11.0",
    "a5b4c3d2e1f0": "3.12.0",
    "ae8bbe7743c9": "3.12.0",
    "7d34483879f0": "3.12.0",
    "da6fb0208061": "3.13.0",
    "89d3d66ed43f": "3.14.0",
    "b7e4c1a90f23": "3.14.0",
    "a8b9c0d1e2f3": "3.15.0",
    "c1d2e3f4a5b6": "3.15.0",
    "c3d9e7f1a2b4": "3.15.0",
    "6f8d9c3b2a1e": "3.15.0",
    "1971f2d9a75b": "3.16.0",
    "17e22815139b": "3.16.0",
    "b7e2c1a4d9f3": "3.16.0",
    "75868b020152": "3.17.0",
    "dc11669786a5": "3.17.0",
    "e7d1f4b2a9c6": "3.18.0",
    "8b6ad64cb8f5": "3.18.0",
    "f4a9b2c7d1e6": "3.18.0",
}
RELEASES: tuple[str, ...] = (
    "1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0", "1.7.0", "1.7.1", "1.7.2",
    "1.8.0", "1.9.0", "1.9.1", "1.10.0", "1.11.0", "1.12.0", "1.12.1", "1.13", "1.13.1", "1.14.0",
    "1.14.1", "1.15.0", "1.16.0", "1.17.0", "1.18.0", "1.19.0", "1.20.0", "1.20.1", "1.20.2",
    "1.21.0", "1.22.0", "1.23.0", "1.23.1", "1.24.0", "1.25.0", "1.25.1", "1.26.0", "1.26.1",
    "1.27.0", "1.28.0", "1.29.0", "1.30.0", "1.30.1", "2.0.0", "2.0.1", "2.1.0", "2.1.1", "2.2.0",
    "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.3.2", "2.4.0", "2.4.1", "2.4.2", "2.5.0", "2.6.0",
    "2.7.0", "2.7.1", "2.8.0", "2.8.1", "2.9.0", "2.9.1", "2.9.2", "2.10.0", "2.10.1", "2.10.2",
    "2.11.0", "2.11.1", "2.11.2", "2.11.3", "2.11.4", "2.11.5", "2.12.0", "2.12.1", "2.12.2",
    "2.13.0", "2.13.1", "2.13.2", "2.13.3", "2.14.0", "2.14.1", "2.14.2", "2.14.3", "2.15.0",
    "2.15.1", "2.16.0", "2.16.1", "2.16.2", "2.17.0", "2.17.1", "2.17.2", "2.18.0", "2.19.0",
    "2.20.0", "2.20.1", "2.20.2", "2.20.3", "2.20.4", "2.21.0", "2.21.1", "2.21.2", "2.21.3",
    "2.22.0", "2.22.1", "2.22.2", "2.22.3", "2.22.4", "2.22.5", "3.0.0", "3.0.1", "3.1.0", "3.1.1",
    "3.1.2", "3.1.3", "3.1.4", "3.2.0", "3.3.0", "3.3.1", "3.3.2", "3.4.0", "3.5.0", "3.5.1",
    "3.6.0", "3.7.0", "3.8.0", "3.8.1", "3.9.0", "3.10.0", "3.10.1", "3.11.0", "3.11.1", "3.12.0",
    "3.13.0", "3.14.0", "3.15.0", "3.15.1", "3.15.2", "3.16.0", "3.16.1", "3.17.0", "3.17.1",
    "3.17.2", "3.18.0",
)

YANKED: frozenset[str] = frozenset({"2.0.0", "2.12.0", "2.22.3", "3.1.2", "3.11.0"})

DEFAULT_HEAD = "dc11669786a5"
"""What ``head`` means (MLflow 3.17.x): the default target of db upgrade, db init and serve."""
HEAD = DEFAULT_HEAD
NEWEST = "f4a9b2c7d1e6"
"""The newest revision trackops carries (MLflow 3.18.0), reached only with ``--to 3.18.0`` or its id."""

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")
_REVISION = re.compile(r"^[0-9a-f]{12,13}$")


def _key(version: str) -> tuple[int, int, int]:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(version)
    return int(match[1]), int(match[2]), int(match[3] or 0)


_BY_KEY = {_key(v): v for v in RELEASES}
_CHANGES = sorted((_key(v), rev) for v, rev in SCHEMA_RELEASES.items())


def is_version(text: str) -> bool:
    """True when `text` looks like an MLflow version (``2.12.2``, ``1.13``), not a revision id."""
    return _VERSION.match(text.strip()) is not None


def known_release(version: str) -> str | None:
    """The release as MLflow spelled it (``1.13`` for ``1.13.0``), or None when it is not one we know."""
    try:
        return _BY_KEY.get(_key(version.strip()))
    except ValueError:
        return None


def head_for_release(version: str) -> str:
    """The head revision MLflow `version` expects; an unknown version is a `UsageError`."""
    release = known_release(version)
    if release is None:
        raise UsageError(f"unknown MLflow version {version!r}", hint=_nearby_hint(version))
    key = _key(release)
    if key < (1, 0, 0):  # pragma: no cover - RELEASES starts at 1.0.0
        raise UsageError(f"MLflow {release} predates schema revisions")
    head = None
    for change_key, rev in _CHANGES:
        if change_key > key:
            break
        head = rev
    assert head is not None
    return head


def first_release(revision: str) -> str | None:
    """The first MLflow release that shipped `revision`, or None when MLflow never did."""
    return REVISION_FIRST_RELEASE.get(revision)


def release_range(revision: str) -> str | None:
    """The MLflow releases whose head is `revision`, as text (``2.8.0 – 2.12.2``), or None."""
    releases = [v for v in RELEASES if head_for_release(v) == revision]
    if not releases:
        return None
    return releases[0] if len(releases) == 1 else f"{releases[0]} – {releases[-1]}"


# Revisions MLflow shipped after the release of trackops' NEWEST: a database holding one is newer than trackops.
NEWER_REVISIONS: frozenset[str] = frozenset(
    r for r, v in REVISION_FIRST_RELEASE.items() if _key(v) > _key(REVISION_FIRST_RELEASE[NEWEST]))


def is_newer_than_trackops(revision: str) -> bool:
    """True for a revision MLflow shipped after the newest trackops carries (the database is newer than trackops)."""
    return revision in NEWER_REVISIONS


def resolve_target(text: str | None) -> str:
    """The revision id for ``--to``: None or ``head`` → DEFAULT_HEAD; ``2.12.2`` → the head 2.12.2 expects; an id stays.

    The id is not checked against the chain here (the caller knows the chain); an MLflow version newer
    than what trackops carries is a `UsageError` that says to upgrade trackops.
    """
    if text is None or text.strip().lower() in ("head", "heads"):
        return DEFAULT_HEAD
    text = text.strip()
    if _REVISION.match(text):
        return text
    if not is_version(text):
        raise UsageError(f"--to {text!r} is neither a revision id nor an MLflow version",
                         hint="give a revision id (see: trackops db history), an MLflow version such as "
                              "2.12.2, or head")
    revision = head_for_release(text)
    if revision in NEWER_REVISIONS:
        raise UsageError(f"MLflow {text} expects schema revision {revision}, newer than trackops' newest {NEWEST}",
                         hint="upgrade trackops to a release that supports that MLflow version")
    return revision


def _nearby_hint(version: str) -> str:
    """Known releases close to `version`, for the hint of an unknown-version error."""
    try:
        key = _key(version.strip())
    except ValueError:
        return f"give an MLflow version such as 2.12.2; known: {RELEASES[0]} to {RELEASES[-1]}"
    if key < _key(RELEASES[0]):
        return f"MLflow before {RELEASES[0]} has no schema revisions; the oldest known release is {RELEASES[0]}"
    same_minor = [v for v in RELEASES if _key(v)[:2] == key[:2]]
    if same_minor:
        return f"known {key[0]}.{key[1]} releases: {', '.join(same_minor)}"
    ordered = sorted(RELEASES, key=_key)
    below = [v for v in ordered if _key(v) < key][-2:]
    above = [v for v in ordered if _key(v) > key][:2]
    if not above:
        return f"the newest MLflow release trackops knows is {RELEASES[-1]}; upgrade trackops for newer ones"
    return f"nearby known releases: {', '.join(below + above)}"
