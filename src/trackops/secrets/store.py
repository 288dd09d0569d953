"""Named secrets in ``trackops_secrets``, encrypted at rest with envelope encryption.

Each secret has its own random 256-bit data key (DEK). The value is encrypted under the DEK with
AES-GCM, and the DEK is wrapped (AES-GCM again) under the key-encryption key (KEK); both carry the
secret's name as associated data, so a row copied under another name does not decrypt. The row
records the KEK's id, so a wrong key is recognised before anything is tried or changed.

`rotate_key` re-wraps every DEK under a new KEK one row per transaction: the ciphertexts do not
change, each row is at every moment wrapped by either the old or the new KEK, and a reader that
holds both (``TRACKOPS_SECRETS_KEK`` + ``TRACKOPS_SECRETS_KEK_PREVIOUS``) keeps reading throughout.
Before the first row changes, every row is unwrapped with the old key: a wrong key changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable

import sqlalchemy as sa

from trackops.errors import KeyFailureError, NotFoundError, UsageError
from trackops.secrets import crypto, epoch
from trackops.secrets.cache import SecretCache

_md = sa.MetaData()
secrets_table = sa.Table(
    "trackops_secrets", _md,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,254}$")
MAX_VALUE_BYTES = 60_000  # fits MySQL's BLOB with the GCM overhead


@dataclasses.dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    kek_id: str
    created_at: int
    updated_at: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RotationReport:
    from_key_ids: list[str]
    to_key_id: str
    rewrapped: int
    already_current: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(f"invalid secret name {name!r}",
                         hint="use 1-255 letters, digits, '.', '_', '-' or '/', starting with a letter or digit")
    return name


def _aad(kind: str, name: str) -> bytes:
    return f"trackops-secret-{kind}:{name}".encode()


def _now_ms() -> int:
    return int(time.time() * 1000)


class SecretStore:
    """Read and write named secrets with a key ring; reads go through an optional `SecretCache`."""

    def __init__(self, engine: sa.Engine, keyring: crypto.KeyRing, *, cache: SecretCache | None = None):
        self.engine = engine
        self.keyring = keyring
        self.cache = cache

    def __repr__(self) -> str:
        return f"SecretStore({self.keyring!r})"

    def _cache_key(self, name: str) -> str:
        return "secret:" + hashlib.sha256(name.encode()).hexdigest()

    def _unwrap(self, row) -> bytes:
        kek = self.keyring.get(row.kek_id)
        if kek is None:
            raise KeyFailureError(
                f"secret {row.name!r} is wrapped by key {row.kek_id}, which is not the configured key "
                f"({', '.join(self.keyring.ids)})",
                hint="set TRACKOPS_SECRETS_KEK (or the key file) to the key the secrets were stored with; "
                     "during a rotation also set TRACKOPS_SECRETS_KEK_PREVIOUS")
        return crypto.decrypt(kek, row.wrapped_key, _aad("key", row.name))

    def _check_keys(self, conn: sa.Connection) -> None:
        unknown = sorted({kid for (kid,) in conn.execute(sa.select(secrets_table.c.kek_id).distinct())}
                         - set(self.keyring.ids))
        if unknown:
            raise KeyFailureError(
                f"the stored secrets are wrapped by key(s) {', '.join(unknown)}, not by the configured key "
                f"{self.keyring.current_id}; nothing was changed",
                hint="use the key the secrets were stored with (TRACKOPS_SECRETS_KEK / TRACKOPS_SECRETS_KEK_FILE)")

    def set(self, name: str, value: str | bytes) -> bool:
        """Store `value` under `name` (replacing it); True when the secret is new."""
        validate_name(name)
        data = value.encode() if isinstance(value, str) else bytes(value)
        if len(data) > MAX_VALUE_BYTES:
            raise UsageError(f"secret {name!r} is {len(data)} bytes; at most {MAX_VALUE_BYTES} are stored")
        dek = crypto.new_key()
        kek = self.keyring.current
        row = {"ciphertext": crypto.encrypt(dek, data, _aad("value", name)),
               "wrapped_key": crypto.encrypt(kek, dek, _aad("key", name)),
               "kek_id": self.keyring.current_id, "updated_at": _now_ms()}
        with self.engine.begin() as conn:
            self._check_keys(conn)
            updated = conn.execute(secrets_table.update().where(secrets_table.c.name == name).values(**row)).rowcount
            if not updated:
                conn.execute(secrets_table.insert().values(name=name, created_at=row["updated_at"], **row))
            epoch.bump(conn, epoch.SECRETS)
        if self.cache is not None:
            self.cache.delete(self._cache_key(name))
        return not updated

    def get(self, name: str) -> str:
        """The value of `name` (a `NotFoundError` when absent, a `KeyFailureError` with a wrong key)."""
        return self.get_bytes(name).decode()

    def get_bytes(self, name: str) -> bytes:
        key = self._cache_key(name)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(secrets_table).where(secrets_table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"secret {name!r} does not exist", hint="trackops secrets list")
        value = crypto.decrypt(self._unwrap(row), row.ciphertext, _aad("value", name))
        if self.cache is not None:
            self.cache.set(key, value)
        return value

    def list(self) -> list[SecretInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(secrets_table.c.name, secrets_table.c.kek_id, secrets_table.c.created_at,
                                          secrets_table.c.updated_at).order_by(secrets_table.c.name))
            return [SecretInfo(r.name, r.kek_id, int(r.created_at), int(r.updated_at)) for r in rows]

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(secrets_table.delete().where(secrets_table.c.name == name)).rowcount:
                raise NotFoundError(f"secret {name!r} does not exist", hint="trackops secrets list")
            epoch.bump(conn, epoch.SECRETS)
        if self.cache is not None:
            self.cache.delete(self._cache_key(name))

    def rotate_key(self, new_kek: bytes, *, progress: Callable[[str], None] | None = None) -> RotationReport:
        """Re-wrap every data key under `new_kek`, one row per transaction; values are not re-encrypted."""
        new_id = crypto.key_id(new_kek)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(secrets_table.c.name, secrets_table.c.kek_id,
                                          secrets_table.c.wrapped_key).order_by(secrets_table.c.name)).all()
        # Every row must open with the keys we hold before the first one changes.
        deks = {r.name: self._unwrap(r) for r in rows if r.kek_id != new_id}
        done = 0
        for r in rows:
            if r.name not in deks:
                continue
            wrapped = crypto.encrypt(new_kek, deks[r.name], _aad("key", r.name))
            with self.engine.begin() as conn:
                # Only if nobody re-set the secret meanwhile (a new value has a new DEK: leave it).
                changed = conn.execute(secrets_table.update().where(
                    secrets_table.c.name == r.name, secrets_table.c.kek_id == r.kek_id,
                    secrets_table.c.wrapped_key == r.wrapped_key).values(wrapped_key=wrapped, kek_id=new_id)).rowcount
                epoch.bump(conn, epoch.SECRETS)
            done += bool(changed)
            if progress is not None:
                progress(r.name)
        return RotationReport(from_key_ids=sorted({r.kek_id for r in rows if r.kek_id != new_id}), to_key_id=new_id,
                              rewrapped=done, already_current=len(rows) - len(deks))
