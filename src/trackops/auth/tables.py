"""The auth tables as Core tables (created by own-schema revision t0002)."""

from __future__ import annotations

import sqlalchemy as sa

_md = sa.MetaData()

users = sa.Table(
    "trackops_users", _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

tokens = sa.Table(
    "trackops_tokens", _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_id", sa.String(32), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
)

experiment_permissions = sa.Table(
    "trackops_experiment_permissions", _md,
    sa.Column("experiment_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("permission", sa.String(32), nullable=False),
)

registered_model_permissions = sa.Table(
    "trackops_registered_model_permissions", _md,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("trackops_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("permission", sa.String(32), nullable=False),
)
