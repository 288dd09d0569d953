"""What a started server has imported: the migration machinery and cryptography stay out of a server
whose database is already at head and which uses no secrets (they cost ~17 MiB resident)."""

from __future__ import annotations

import json
import subprocess
import sys

from trackops.config import Settings
from trackops.services import migrate

# The steps of `trackops serve` up to uvicorn.run, in a fresh interpreter: the CLI's imports, the
# preflight, the shared webhook key, then the app exactly as uvicorn's factory builds it.
SERVE_STEPS = """
import json, os, sys
import trackops.cli.main
from trackops.config import Settings
from trackops.server.factory import app_from_env
from trackops.services.serve import CONFIG_ENV, preflight
from trackops.stores.webhooks import share_process_key

report = preflight(Settings(backend_store_uri=sys.argv[1], artifacts_destination=sys.argv[2]))
os.environ[CONFIG_ENV] = report.config.to_env()
share_process_key(os.environ)
app_from_env()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_server_on_a_database_at_head_has_not_imported_alembic_or_cryptography(sqlite_url, tmp_path):
    migrate.init(Settings(backend_store_uri=sqlite_url))
    done = subprocess.run([sys.executable, "-c", SERVE_STEPS, sqlite_url, str(tmp_path / "artifacts")],
                          capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "trackops" in loaded and "starlette" in loaded
    assert not loaded & {"alembic", "mako", "pygments", "cryptography"}
