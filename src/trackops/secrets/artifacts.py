"""Artifact-store credentials from a named secret (``trackops serve --artifacts-credentials-secret NAME``).

The secret holds JSON: ``{"aws_access_key_id": ..., "aws_secret_access_key": ...,
"aws_session_token": ... (optional)}``. The S3 client gets botocore refreshable credentials that
expire every cache TTL and are re-read through the `SecretStore` (and its `SecretCache`), so a
``trackops secrets set`` of new credentials reaches the server without a restart, and the keys are
never in the process environment.
"""

from __future__ import annotations

import datetime
import json
import os

from trackops.errors import KeyFailureError, UsageError
from trackops.secrets.store import SecretStore

REQUIRED = ("aws_access_key_id", "aws_secret_access_key")


def read_credentials(store: SecretStore, name: str) -> dict[str, str]:
    """The credentials in secret `name`; a malformed secret is an error that names no value."""
    try:
        data = json.loads(store.get(name))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"secret {name!r} is not JSON",
                         hint='store {"aws_access_key_id": "...", "aws_secret_access_key": "..."}') from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in REQUIRED):
        raise UsageError(f"secret {name!r} lacks {' or '.join(REQUIRED)}",
                         hint='store {"aws_access_key_id": "...", "aws_secret_access_key": "..."}')
    return data


def s3_client_from_secret(store: SecretStore, name: str, *, ttl: float):
    """A boto3 S3 client whose credentials come from secret `name`, re-read every `ttl` seconds."""
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.credentials import RefreshableCredentials

    def fetch() -> dict:
        creds = read_credentials(store, name)
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
        return {"access_key": creds["aws_access_key_id"], "secret_key": creds["aws_secret_access_key"],
                "token": creds.get("aws_session_token"), "expiry_time": expiry.isoformat()}

    session = botocore.session.get_session()
    session._credentials = RefreshableCredentials.create_from_metadata(  # noqa: SLF001 - botocore's documented way
        metadata=fetch(), refresh_using=fetch, method="trackops-secret", advisory_timeout=0, mandatory_timeout=0)
    style = os.environ.get("MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE")
    config = Config(connect_timeout=10, read_timeout=60, s3={"addressing_style": style} if style else None)
    ignore_tls = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").strip().lower() in ("1", "true", "yes", "on")
    return boto3.session.Session(botocore_session=session).client(
        "s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None, verify=False if ignore_tls else None,
        config=config)


def repository_with_secret(destination: str, store: SecretStore, name: str, *, ttl: float):
    """The S3 artifact repository of `destination`, authenticated by secret `name`."""
    from trackops.artifacts.s3 import S3ArtifactRepository

    if not destination.startswith("s3://"):
        raise UsageError(f"--artifacts-credentials-secret applies to s3:// destinations, not {destination}")
    if store.keyring is None:
        raise KeyFailureError("--artifacts-credentials-secret needs the key-encryption key",
                              hint="set TRACKOPS_SECRETS_KEK or TRACKOPS_SECRETS_KEK_FILE for the server")
    return S3ArtifactRepository(destination, client=s3_client_from_secret(store, name, ttl=ttl))
