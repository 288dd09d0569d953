"""docs/cli.md and completions/ are generated from the CLI; they must be current, and complete."""

from pathlib import Path

import typer

from trackops.cli.docgen import generated_files
from trackops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_generated_docs_and_completions_are_current():
    stale = [str(path.relative_to(ROOT)) for path, text in generated_files(ROOT).items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"regenerate with: python -m trackops.cli.docgen  (stale: {', '.join(stale)})"


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help_with_an_example_and_is_in_the_docs():
    cli_md = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for path, cmd in _commands(typer.main.get_command(app)):
        name = "trackops " + " ".join(path)
        assert cmd.help, f"{name} has no help"
        if not hasattr(cmd, "commands"):
            assert "Example" in cmd.help, f"{name} --help has no example"
        assert f"## `{name}`" in cli_md, f"{name} is missing from docs/cli.md"
