"""Alembic environment for trackops' copy of MLflow's tracking-schema chain.

Driven only through `trackops.db.revisions`: online, it uses the connection put in
``config.attributes["connection"]``; offline (``--sql``), it renders DDL for ``config.attributes["url"]``.
Like MLflow, every dialect runs in batch mode (on SQLite that rebuilds tables; elsewhere it is plain
ALTER) and the version table is ``alembic_version``.
"""

from alembic import context

config = context.config
VERSION_TABLE = "alembic_version"


def run_offline() -> None:
    context.configure(url=config.attributes["url"], literal_binds=True, render_as_batch=True,
                      version_table=VERSION_TABLE, as_sql=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        render_as_batch=True,
        version_table=VERSION_TABLE,
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
