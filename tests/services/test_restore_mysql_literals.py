"""Restore onto MariaDB writes its INSERTs as SQL literals itself: every value must arrive as it left."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_rows
from trackops.config import Settings
from trackops.db.engine import create_engine
from trackops.entities import Metric, Param, RunTag
from trackops.services import backup, restore
from trackops.stores.tracking import TrackingStore

NASTY = ["it's", 'say "hi"', "back\\slash", "trailing\\", "new\nline", "cr\rlf", "tab\tx", "nul\x00byte",
         "ctrl-z\x1a", "percent %s %(x)s %%", "emoji 🧪 and ü", "'; DROP TABLE runs; --", "", " "]


def _source(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    from trackops.db import revisions

    engine = create_engine(sa.make_url(url))
    with engine.begin() as conn:
        revisions.upgrade(conn)
    store = TrackingStore(engine, default_artifact_root=str(tmp_path / "art"))
    eid = store.create_experiment("literal's \"test\"")
    run = store.create_run(eid, user_id="o'brien", start_time=1, run_name="a\\b").info.run_id
    store.log_batch(run, metrics=[Metric("tiny", 5e-324, 1, 0), Metric("huge", 1.7976931348623157e308, 2, 1),
                                  Metric("third", 1 / 3, 3, 2 ** 53 + 1), Metric("neg", -0.0, 4, -5),
                                  Metric("nan", math.nan, 5, 3)],
                    params=[Param(f"p{i}", value) for i, value in enumerate(NASTY)],
                    tags=[RunTag(f"t{i}", value) for i, value in enumerate(NASTY)])
    engine.dispose()
    return url


@pytest.mark.parametrize("backslashes", [True, False], ids=["backslash-escapes", "no-backslash-escapes"])
def test_values_with_quotes_backslashes_control_characters_and_extreme_floats_arrive_unchanged(
        mysql_url, tmp_path, backslashes):
    source = _source(tmp_path)
    repo = tmp_path / "repo"
    backup.backup(Settings(backend_store_uri=source, artifacts_destination=str(tmp_path / "art")), to=str(repo),
                  artifacts=False)
    target = mysql_url
    if not backslashes:  # the server's mode for this session: quotes are doubled, backslashes are plain
        target = sa.make_url(mysql_url).update_query_dict(
            {"init_command": "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"}
        ).render_as_string(hide_password=False)
    restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=target,
                    to_artifacts_destination=str(tmp_path / "art"))
    restored, original = all_rows(mysql_url), all_rows(source)
    for table in ("experiments", "runs", "params", "tags", "metrics", "latest_metrics"):
        assert restored[table] == original[table], table
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        params = dict(conn.exec_driver_sql("SELECT `key`, value FROM params").all())
        tiny = conn.exec_driver_sql("SELECT value FROM metrics WHERE `key` = 'tiny'").scalar_one()
    engine.dispose()
    assert [params[f"p{i}"] for i in range(len(NASTY))] == NASTY  # the comparison above, read directly
    assert tiny == 5e-324
