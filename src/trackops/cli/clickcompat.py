"""The click that typer runs on: recent typer ships its own copy, older typer uses the click package.

Exceptions must be caught from the module typer raises them from, or they escape as bugs.
"""

try:
    from typer._click.exceptions import ClickException  # typer vendors click in recent releases
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import ClickException  # type: ignore[no-redef]

__all__ = ["ClickException"]
