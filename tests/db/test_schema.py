"""The Core metadata in trackops.db.schema names exactly the tables and columns of a live head database."""

from __future__ import annotations

import sqlalchemy as sa

from trackops.db import schema
from trackops.db.engine import create_engine


def test_schema_tables_and_columns_equal_the_live_head_schema(head_db_url):
    engine = create_engine(head_db_url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            live = {t: [c["name"] for c in inspector.get_columns(t)]
                    for t in inspector.get_table_names()
                    if not t.endswith("alembic_version") and not t.startswith("trackops_")}
            live_pks = {t: inspector.get_pk_constraint(t)["constrained_columns"] for t in live}
    finally:
        engine.dispose()
    ours = {name: [c.name for c in table.columns] for name, table in schema.metadata.tables.items()}
    assert sorted(ours) == sorted(live)
    assert len(ours) == 64
    for name in live:
        assert sorted(ours[name]) == sorted(live[name]), name
        assert [c.name for c in schema.metadata.tables[name].primary_key.columns] == live_pks[name], name


def test_schema_marks_the_generated_span_duration_column():
    assert schema.spans.c.duration_ns.computed is not None
