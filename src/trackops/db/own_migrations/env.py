"""Alembic environment for trackops' own tables, driven only through `trackops.db.own_schema`.

These tables share the database with MLflow's but have their own version table,
``trackops_alembic_version``, so MLflow's ``alembic_version`` and schema stay exactly MLflow's.
"""

from alembic import context

config = context.config
VERSION_TABLE = "trackops_alembic_version"


def run_offline() -> None:
    context.configure(url=config.attributes["url"], literal_binds=True, version_table=VERSION_TABLE,
                      as_sql=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    context.configure(connection=config.attributes["connection"], version_table=VERSION_TABLE,
                      on_version_apply=config.attributes.get("on_version_apply"))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
