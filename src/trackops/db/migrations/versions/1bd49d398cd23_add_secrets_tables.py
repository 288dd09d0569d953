"""Add the AI-gateway tables: secrets, endpoints, model definitions, their mappings, bindings and tags.

Also installs the ``prevent_secrets_aad_mutation`` trigger: a secret's id and name are the
additional authenticated data of its AES-GCM envelope, so changing either would make the value
undecryptable. Each dialect gets its own form (SQLite ``RAISE(ABORT)``, a plpgsql function on
PostgreSQL, ``SIGNAL`` on MySQL). The timestamp columns have no server default, as in MLflow.
Statements carry no trailing semicolon: alembic adds one when it prints them for ``--sql``.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "1bd49d398cd23"
down_revision = "bf29a5ff90ea"
branch_labels = None
depends_on = None

TRIGGER = "prevent_secrets_aad_mutation"
_MESSAGE = "secret_id and secret_name are immutable (used as AAD in encryption)"
_CHANGED = "OLD.secret_id != NEW.secret_id OR OLD.secret_name != NEW.secret_name"

_TRIGGER_SQL = {
    "sqlite": [
        f"CREATE TRIGGER {TRIGGER}\nBEFORE UPDATE ON secrets\nFOR EACH ROW\nWHEN {_CHANGED}\n"
        f"BEGIN\n    SELECT RAISE(ABORT, '{_MESSAGE}');\nEND",
    ],
    "postgresql": [
        f"CREATE OR REPLACE FUNCTION {TRIGGER}()\nRETURNS TRIGGER AS $$\nBEGIN\n"
        f"    IF {_CHANGED} THEN\n        RAISE EXCEPTION '{_MESSAGE}';\n    END IF;\n"
        f"    RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {TRIGGER}\nBEFORE UPDATE ON secrets\nFOR EACH ROW\nEXECUTE FUNCTION {TRIGGER}()",
    ],
    "mysql": [
        f"CREATE TRIGGER {TRIGGER}\nBEFORE UPDATE ON secrets\nFOR EACH ROW\nBEGIN\n"
        f"    IF {_CHANGED} THEN\n        SIGNAL SQLSTATE '45000'\n"
        f"        SET MESSAGE_TEXT = '{_MESSAGE}';\n    END IF;\nEND",
    ],
}


def _has_trigger(name: str) -> bool:
    if ops.offline():
        return False
    query = {
        "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n",
        "postgresql": "SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgname = :n",
        "mysql": "SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                 "AND TRIGGER_NAME = :n",
    }[ops.dialect()]
    return op.get_bind().execute(sa.text(query), {"n": name}).first() is not None


def _created_updated(*, updated: bool = True) -> list[sa.Column]:
    cols = [sa.Column("created_by", sa.String(255), nullable=True),
            sa.Column("created_at", sa.BigInteger(), nullable=False)]
    if updated:
        cols += [sa.Column("last_updated_by", sa.String(255), nullable=True),
                 sa.Column("last_updated_at", sa.BigInteger(), nullable=False)]
    return cols


def upgrade() -> None:
    ops.create_table_if_missing(
        "secrets",
        sa.Column("secret_id", sa.String(36), nullable=False),
        sa.Column("secret_name", sa.String(255), nullable=False),
        sa.Column("encrypted_value", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("masked_value", sa.String(500), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("auth_config", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        *_created_updated(),
        sa.PrimaryKeyConstraint("secret_id", name="secrets_pk"),
    )
    ops.create_index_if_missing("unique_secret_name", "secrets", ["secret_name"], unique=True)

    ops.create_table_if_missing(
        "endpoints",
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        *_created_updated(),
        sa.PrimaryKeyConstraint("endpoint_id", name="endpoints_pk"),
    )
    ops.create_index_if_missing("unique_endpoint_name", "endpoints", ["name"], unique=True)

    ops.create_table_if_missing(
        "model_definitions",
        sa.Column("model_definition_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("secret_id", sa.String(36), nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(256), nullable=False),
        *_created_updated(),
        sa.ForeignKeyConstraint(["secret_id"], ["secrets.secret_id"], name="fk_model_definitions_secret_id",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("model_definition_id", name="model_definitions_pk"),
    )
    ops.create_index_if_missing("unique_model_definition_name", "model_definitions", ["name"], unique=True)
    ops.create_index_if_missing("index_model_definitions_secret_id", "model_definitions", ["secret_id"])
    ops.create_index_if_missing("index_model_definitions_provider", "model_definitions", ["provider"])

    ops.create_table_if_missing(
        "endpoint_model_mappings",
        sa.Column("mapping_id", sa.String(36), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("model_definition_id", sa.String(36), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        *_created_updated(updated=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.endpoint_id"],
                                name="fk_endpoint_model_mappings_endpoint_id", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_definition_id"], ["model_definitions.model_definition_id"],
                                name="fk_endpoint_model_mappings_model_definition_id"),
        sa.PrimaryKeyConstraint("mapping_id", name="endpoint_model_mappings_pk"),
    )
    ops.create_index_if_missing("index_endpoint_model_mappings_endpoint_id", "endpoint_model_mappings",
                                ["endpoint_id"])
    ops.create_index_if_missing("index_endpoint_model_mappings_model_definition_id", "endpoint_model_mappings",
                                ["model_definition_id"])
    ops.create_index_if_missing("unique_endpoint_model_mapping", "endpoint_model_mappings",
                                ["endpoint_id", "model_definition_id"], unique=True)

    # Column order differs from the other tables here (created_at before created_by); it is MLflow's.
    ops.create_table_if_missing(
        "endpoint_bindings",
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("last_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.endpoint_id"],
                                name="fk_endpoint_bindings_endpoint_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", "resource_type", "resource_id", name="endpoint_bindings_pk"),
    )

    ops.create_table_if_missing(
        "endpoint_tags",
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(5000), nullable=True),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.endpoint_id"],
                                name="fk_endpoint_tags_endpoint_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key", "endpoint_id", name="endpoint_tag_pk"),
    )
    ops.create_index_if_missing("index_endpoint_tags_endpoint_id", "endpoint_tags", ["endpoint_id"])

    if not _has_trigger(TRIGGER):
        for statement in _TRIGGER_SQL[ops.dialect()]:
            op.execute(statement)
