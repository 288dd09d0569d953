"""`trackops secrets ...`: named secrets encrypted at rest (envelope encryption), and key rotation."""

from __future__ import annotations

import datetime
import sys
from typing import Annotated

import typer

from trackops.cli.common import EXIT_CODES_EPILOG, Yes, BackendStoreUri, JsonOutput, console, print_json, settings_from
from trackops.errors import UsageError

app = typer.Typer(
    name="secrets",
    help="Named secrets in the tracking database, AES-GCM encrypted under a key-encryption key "
         "(TRACKOPS_SECRETS_KEK or TRACKOPS_SECRETS_KEK_FILE). Values are never printed.",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The secret's name.")]
KeyFile = Annotated[str | None, typer.Option(
    "--key-file", metavar="PATH",
    help="File holding the key-encryption key (first line; further lines: previous keys). "
         "Env: TRACKOPS_SECRETS_KEK_FILE, or the key itself in TRACKOPS_SECRETS_KEK.")]


def _open(backend_store_uri, key_file, *, require_key=True):
    from trackops.auth.manage import open_secret_store

    return open_secret_store(settings_from(backend_store_uri=backend_store_uri), key_file=key_file,
                             require_key=require_key)


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def set_(
    name: Name,
    value_stdin: Annotated[bool, typer.Option("--value-stdin",
                                              help="Read the value from stdin (all of it, one trailing newline "
                                                   "dropped); otherwise it is prompted for.")] = False,
    key_file: KeyFile = None,
    yes: Yes = False, backend_store_uri: BackendStoreUri = None,
) -> int:
    """Store a secret (replacing its value). The value comes from stdin or a hidden prompt, never a flag.

    Examples:

      trackops secrets set s3-credentials --value-stdin < creds.json
    """
    if value_stdin:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    elif sys.stdin.isatty():
        value = typer.prompt("Value", hide_input=True, err=True)
    else:
        raise UsageError("a value is needed and there is no terminal to ask on", hint="pipe it in with --value-stdin")
    if not value:
        raise UsageError("the value is empty; nothing was stored")
    with _open(backend_store_uri, key_file) as store:
        created = store.set(name, value)
    console.print(f"{'Stored' if created else 'Replaced'} secret {name!r}.", markup=False)
    return 0


def list_(key_file: KeyFile = None, backend_store_uri: BackendStoreUri = None, json_output: JsonOutput = False) -> int:
    """List secrets: name, the id of the key that wraps it, when it was set (never values).

    Example:

      trackops secrets list --key-file /etc/trackops/kek
    """
    with _open(backend_store_uri, key_file, require_key=False) as store:
        found = store.list()
    if json_output:
        print_json({"secrets": [s.to_json() for s in found]})
        return 0
    for s in found:
        sys.stdout.write(f"{s.name:<40} key {s.kek_id}  updated {_when(s.updated_at)}\n")
    return 0


def delete(name: Name, yes: Yes = False,
           backend_store_uri: BackendStoreUri = None) -> int:
    """Delete a secret.

    Example:

      trackops secrets delete s3-artifacts
    """
    with _open(backend_store_uri, None, require_key=False) as store:
        store.delete(name)
    console.print(f"Deleted secret {name!r}.", markup=False)
    return 0


def rotate_key(
    new_key_file: Annotated[str | None, typer.Option(
        "--new-key-file", metavar="PATH", help="File holding the new key (else env TRACKOPS_SECRETS_NEW_KEK).")] = None,
    key_file: KeyFile = None,
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Re-wrap every secret's data key under a new key-encryption key, online.

    Each secret is re-wrapped in its own transaction; values are not re-encrypted. Servers keep
    reading when they hold both keys (new in TRACKOPS_SECRETS_KEK, old in TRACKOPS_SECRETS_KEK_PREVIOUS).
    Every secret is opened with the current key first: with a wrong key nothing changes (exit 12).
    See docs/secrets.md for the whole procedure.

    Example:

      trackops secrets rotate-key --key-file /etc/trackops/kek --new-key-file /etc/trackops/kek.new
    """
    from trackops.secrets.crypto import load_new_key

    new_key = load_new_key(key_file=new_key_file)
    with _open(backend_store_uri, key_file) as store:
        report = store.rotate_key(new_key)
    if json_output:
        print_json(report.to_json())
    else:
        console.print(f"Re-wrapped {report.rewrapped} secret(s) under key {report.to_key_id} "
                      f"({report.already_current} already were).", markup=False)
    return 0


for _name, _command in (("set", set_), ("list", list_), ("delete", delete), ("rotate-key", rotate_key)):
    app.command(_name, epilog=EXIT_CODES_EPILOG)(_command)
