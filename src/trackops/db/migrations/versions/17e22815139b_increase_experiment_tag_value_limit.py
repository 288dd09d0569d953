"""Let experiment tag values hold 20,000 characters: VARCHAR(5000) becomes TEXT (MEDIUMTEXT on MySQL).

MySQL's TEXT holds 65,535 bytes, too few for 20,000 four-byte characters, hence MEDIUMTEXT there.
SQLite rebuilds the table to change a type; the alteration is idempotent, so a re-run is harmless.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import MEDIUMTEXT

revision = "17e22815139b"
down_revision = "1971f2d9a75b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiment_tags") as batch:
        batch.alter_column("value", existing_type=sa.String(5000), type_=sa.Text().with_variant(MEDIUMTEXT, "mysql"),
                           existing_nullable=True, existing_server_default=None)
