"""Alembic scripts for trackops' own tables (``trackops_*``), versioned in ``trackops_alembic_version``."""
