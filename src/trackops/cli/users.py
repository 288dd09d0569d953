"""`trackops users ...`: users, API tokens and permissions for `trackops serve --auth`."""

from __future__ import annotations

import datetime
import sys
from typing import Annotated

import typer

from trackops.cli.common import Yes, EXIT_CODES_EPILOG, BackendStoreUri, JsonOutput, ask, console, print_json, settings_from
from trackops.errors import UsageError

app = typer.Typer(
    name="users",
    help="Users, API tokens and per-experiment / per-registered-model permissions for trackops serve --auth.",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)
tokens_app = typer.Typer(name="tokens", help="API tokens (Authorization: Bearer, MLFLOW_TRACKING_TOKEN).",
                         epilog=EXIT_CODES_EPILOG, no_args_is_help=True, rich_markup_mode=None)

Username = Annotated[str, typer.Argument(metavar="USERNAME", help="The user's name.")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of stdin (otherwise it is prompted for).")]
Experiment = Annotated[str | None, typer.Option("--experiment", metavar="ID", help="An experiment id.")]
RegisteredModel = Annotated[str | None, typer.Option("--registered-model", metavar="NAME",
                                                     help="A registered model name.")]


def _password(from_stdin: bool) -> str:
    """The password from stdin or a hidden prompt (asked twice); never from a flag value."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise UsageError("no password on stdin",
                             hint="echo the password into the command, or drop --password-stdin")
        return password
    if not sys.stdin.isatty():
        raise UsageError("a password is needed and there is no terminal to ask on",
                         hint="pipe it in with --password-stdin")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


def _resource(experiment: str | None, registered_model: str | None) -> tuple[str, str]:
    if (experiment is None) == (registered_model is None):
        raise UsageError("name exactly one resource", hint="--experiment ID or --registered-model NAME")
    return ("experiment", experiment) if experiment is not None else ("registered_model", registered_model)


def _store(backend_store_uri):
    from trackops.auth.manage import open_auth_store

    return open_auth_store(settings_from(backend_store_uri=backend_store_uri))


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def create(
    username: Username,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator (all permissions).")] = False,
    password_stdin: PasswordStdin = False,
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Create a user. The password is prompted for, or read from stdin with --password-stdin.

    Examples:

      trackops users create admin --admin

      printf '%s\\n' "$PASSWORD" | trackops users create alice --password-stdin
    """
    password = _password(password_stdin)
    with _store(backend_store_uri) as store:
        user = store.create_user(username, password, admin=admin)
    if json_output:
        print_json(user.to_json())
    else:
        console.print(f"Created {'administrator' if admin else 'user'} {user.username!r}.", markup=False)
    return 0


def list_(backend_store_uri: BackendStoreUri = None, json_output: JsonOutput = False) -> int:
    """List users: name, administrator or not, number of API tokens.

    Example:

      trackops users list --json
    """
    with _store(backend_store_uri) as store:
        users = store.list_users()
    if json_output:
        print_json({"users": users})
        return 0
    if not users:
        console.print("No users yet: trackops users create NAME --admin", markup=False)
    for u in users:
        sys.stdout.write(f"{u['username']:<32} {'admin' if u['is_admin'] else 'user':<6} {u['tokens']} token(s)\n")
    return 0


def delete(username: Username, yes: Yes = False, backend_store_uri: BackendStoreUri = None) -> int:
    """Delete a user with their tokens and permissions (every server worker stops accepting them within 1 s).

    Example:

      trackops users delete alice --yes
    """
    if not yes:
        if not ask(f"Delete user {username!r}, their tokens and permissions?",
                   refusal=f"deleting user {username!r} needs confirmation, and there is no terminal to ask on",
                   hint="add --yes"):
            console.print("Nothing deleted.", markup=False)
            return 0
    with _store(backend_store_uri) as store:
        store.delete_user(username)
    console.print(f"Deleted user {username!r}.", markup=False)
    return 0


def set_password(username: Username, password_stdin: PasswordStdin = False,
                 yes: Yes = False, backend_store_uri: BackendStoreUri = None) -> int:
    """Set a user's password (prompted, or from stdin); the old one stops working within 1 s.

    Example:

      printf '%s\n' "$NEW_PASSWORD" | trackops users set-password alice --password-stdin
    """
    password = _password(password_stdin)
    with _store(backend_store_uri) as store:
        store.set_password(username, password)
    console.print(f"Password of {username!r} changed.", markup=False)
    return 0


def grant(
    username: Username,
    permission: Annotated[str, typer.Option("--permission", metavar="PERMISSION",
                                            help="READ, EDIT, MANAGE or NO_PERMISSIONS.")],
    experiment: Experiment = None,
    registered_model: RegisteredModel = None,
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Give a user a permission on one experiment or registered model (replacing what they had).

    Examples:

      trackops users grant alice --experiment 3 --permission EDIT

      trackops users grant bob --registered-model churn --permission NO_PERMISSIONS
    """
    kind, resource = _resource(experiment, registered_model)
    with _store(backend_store_uri) as store:
        result = store.grant(username, kind, resource, permission)
    if json_output:
        print_json(result.to_json())
    else:
        console.print(f"{username!r} has {result.permission} on {kind.replace('_', ' ')} {result.resource}.",
                      markup=False)
    return 0


def revoke(username: Username, experiment: Experiment = None, registered_model: RegisteredModel = None,
           yes: Yes = False, backend_store_uri: BackendStoreUri = None) -> int:
    """Remove a user's permission on one resource (they fall back to the server's default permission).

    Example:

      trackops users revoke alice --experiment 12
    """
    kind, resource = _resource(experiment, registered_model)
    with _store(backend_store_uri) as store:
        store.revoke(username, kind, resource)
    console.print(f"Revoked {username!r}'s permission on {kind.replace('_', ' ')} {resource}.", markup=False)
    return 0


def permissions(username: Annotated[str | None, typer.Argument(metavar="[USERNAME]", help="Only this user.")] = None,
                backend_store_uri: BackendStoreUri = None, json_output: JsonOutput = False) -> int:
    """List explicit permissions (everything else gets the server's --default-permission).

    Example:

      trackops users permissions alice
    """
    with _store(backend_store_uri) as store:
        grants = store.list_grants(username)
    if json_output:
        print_json({"permissions": [g.to_json() for g in grants]})
        return 0
    for g in grants:
        sys.stdout.write(f"{g.username:<24} {g.kind:<17} {g.resource:<32} {g.permission}\n")
    return 0


def import_(
    from_mlflow_auth_db: Annotated[str, typer.Option(
        "--from-mlflow-auth-db", metavar="URI",
        help="MLflow's basic-auth database (database_uri of basic_auth.ini, e.g. sqlite:///basic_auth.db).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be imported; change nothing.")] = False,
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Import users (passwords keep working) and experiment / registered-model permissions from MLflow.

    Users that already exist here are left alone. Wildcard, workspace, scorer and gateway grants have
    no trackops equivalent and are counted as skipped.

    Examples:

      trackops users import --from-mlflow-auth-db sqlite:///basic_auth.db --dry-run
    """
    from trackops.auth.importer import import_mlflow_auth

    with _store(backend_store_uri) as store:
        report = import_mlflow_auth(store.engine, from_mlflow_auth_db, dry_run=dry_run)
    if json_output:
        print_json(report.to_json())
        return 0
    verb = "Would import" if dry_run else "Imported"
    console.print(f"{verb} {len(report.users_imported)} user(s) ({len(report.admins)} admin), "
                  f"{report.experiment_grants} experiment and {report.registered_model_grants} registered-model "
                  f"permission(s) from {report.source} ({report.permission_source}); "
                  f"{report.skipped_grants} grant(s) skipped.", markup=False, soft_wrap=True)
    if report.users_existing:
        console.print(f"Already here, left as they are: {', '.join(report.users_existing)}", markup=False,
                      soft_wrap=True)
    return 0


def token_create(
    username: Username,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="What the token is for (shown in lists).")],
    expires_in_days: Annotated[float | None, typer.Option("--expires-in-days", metavar="DAYS",
                                                          help="Expire after this many days (default: never).")] = None,
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Create an API token. It is printed once on stdout and stored only as a hash.

    Examples:

      export MLFLOW_TRACKING_TOKEN=$(trackops users tokens create alice --name ci --expires-in-days 90)
    """
    with _store(backend_store_uri) as store:
        info, token = store.create_token(username, name, expires_in_days=expires_in_days)
    if json_output:
        print_json({**info.to_json(), "token": token})
    else:
        sys.stdout.write(token + "\n")
        console.print(f"Token {info.token_id} for {username!r} (expires: {_when(info.expires_at)}). "
                      "It is shown only now.", markup=False)
    return 0


def token_list(username: Annotated[str | None, typer.Argument(metavar="[USERNAME]", help="Only this user.")] = None,
               backend_store_uri: BackendStoreUri = None, json_output: JsonOutput = False) -> int:
    """List API tokens (ids, names, expiry; never the tokens).

    Example:

      trackops users tokens list alice
    """
    with _store(backend_store_uri) as store:
        tokens = store.list_tokens(username)
    if json_output:
        print_json({"tokens": [t.to_json() for t in tokens]})
        return 0
    for t in tokens:
        sys.stdout.write(f"{t.token_id:<18} {t.username:<24} {t.name:<24} expires {_when(t.expires_at)}\n")
    return 0


def token_revoke(token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The id from tokens list.")],
                 yes: Yes = False, backend_store_uri: BackendStoreUri = None) -> int:
    """Revoke an API token (every server worker refuses it within 1 s).

    Example:

      trackops users tokens revoke 3
    """
    with _store(backend_store_uri) as store:
        store.revoke_token(token_id)
    console.print(f"Revoked token {token_id}.", markup=False)
    return 0


for _name, _command in (("create", create), ("list", list_), ("delete", delete), ("set-password", set_password),
                        ("grant", grant), ("revoke", revoke), ("permissions", permissions), ("import", import_)):
    app.command(_name, epilog=EXIT_CODES_EPILOG)(_command)
for _name, _command in (("create", token_create), ("list", token_list), ("revoke", token_revoke)):
    tokens_app.command(_name, epilog=EXIT_CODES_EPILOG)(_command)
app.add_typer(tokens_app, name="tokens")
