"""Add the trace_info columns that version 3 traces need: client_request_id and request/response previews."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "cbc13b556ace"
down_revision = "bda7b8c39065"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name, length in (("client_request_id", 50), ("request_preview", 1000), ("response_preview", 1000)):
        if not has_column("trace_info", name):
            op.add_column("trace_info", sa.Column(name, sa.String(length), nullable=True))
