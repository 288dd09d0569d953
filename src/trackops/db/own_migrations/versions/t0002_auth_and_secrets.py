"""Add users, API tokens, per-experiment and per-registered-model permissions, secrets and epochs.

- ``trackops_users``: username, password hash (self-describing: trackops' scrypt, or werkzeug's
  ``scrypt:``/``pbkdf2:`` formats kept from an MLflow import), admin flag.
- ``trackops_tokens``: API tokens, found by their public id, the secret part stored as a SHA-256.
- ``trackops_experiment_permissions`` / ``trackops_registered_model_permissions``: one row per user
  and resource; no foreign key to MLflow's tables, so MLflow's migrations and deletions never trip on them.
- ``trackops_secrets``: named secrets, AES-GCM ciphertext and the data key wrapped by a KEK.
- ``trackops_epochs``: counters bumped by every change to users (``auth``), permissions (``grants``)
  or secrets (``secrets``); server workers watch them to drop their caches.
"""

import sqlalchemy as sa
from alembic import op

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None

TABLES = ("trackops_tokens", "trackops_experiment_permissions", "trackops_registered_model_permissions",
          "trackops_users", "trackops_secrets", "trackops_epochs")


def upgrade() -> None:
    bind = op.get_bind() if not op.get_context().as_sql else None
    existing = set(sa.inspect(bind).get_table_names()) if bind is not None else set()
    # Each table is checked, so a re-run after MySQL/MariaDB committed part of it completes it.
    if "trackops_users" not in existing:
        op.create_table(
            "trackops_users",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("username", sa.String(255), nullable=False),
            sa.Column("password_hash", sa.String(512), nullable=False),
            sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("created_at", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.BigInteger, nullable=False),
            sa.UniqueConstraint("username", name="trackops_users_username"),
        )
    if "trackops_tokens" not in existing:
        op.create_table(
            "trackops_tokens",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("token_id", sa.String(32), nullable=False),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE",
                                                           name="trackops_tokens_user_fk"), nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("secret_hash", sa.String(64), nullable=False),
            sa.Column("created_at", sa.BigInteger, nullable=False),
            sa.Column("expires_at", sa.BigInteger, nullable=True),
            sa.UniqueConstraint("token_id", name="trackops_tokens_token_id"),
        )
        op.create_index("trackops_tokens_user", "trackops_tokens", ["user_id"])
    if "trackops_experiment_permissions" not in existing:
        op.create_table(
            "trackops_experiment_permissions",
            sa.Column("experiment_id", sa.Integer, nullable=False),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE",
                                                           name="trackops_exp_perm_user_fk"), nullable=False),
            sa.Column("permission", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("experiment_id", "user_id", name="trackops_experiment_permissions_pk"),
        )
        op.create_index("trackops_exp_perm_user", "trackops_experiment_permissions", ["user_id"])
    if "trackops_registered_model_permissions" not in existing:
        op.create_table(
            "trackops_registered_model_permissions",
            sa.Column("name", sa.String(256), nullable=False),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE",
                                                           name="trackops_rm_perm_user_fk"), nullable=False),
            sa.Column("permission", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("name", "user_id", name="trackops_registered_model_permissions_pk"),
        )
        op.create_index("trackops_rm_perm_user", "trackops_registered_model_permissions", ["user_id"])
    if "trackops_secrets" not in existing:
        op.create_table(
            "trackops_secrets",
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("ciphertext", sa.LargeBinary, nullable=False),
            sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
            sa.Column("kek_id", sa.String(16), nullable=False),
            sa.Column("created_at", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.BigInteger, nullable=False),
        )
    if "trackops_epochs" not in existing:
        epochs = op.create_table(
            "trackops_epochs",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        )
        op.bulk_insert(epochs, [{"name": "auth", "value": 0}, {"name": "grants", "value": 0},
                                    {"name": "secrets", "value": 0}])


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
