"""Generate docs/cli.md from the commands' --help, and the shell completion scripts.

Run ``python -m trackops.cli.docgen`` after changing a command; a test fails while either is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.completion import completion_init, get_completion_script

COMPLETE_VAR = "_TRACKOPS_COMPLETE"
COMPLETION_FILES = {"bash": "trackops.bash", "zsh": "_trackops", "fish": "trackops.fish"}
HELP_WIDTH = 100


def _walk(command, path: list[str]):
    yield path, command
    for name in sorted(getattr(command, "commands", {}) or {}):
        sub = command.commands[name]
        if not getattr(sub, "hidden", False):
            yield from _walk(sub, [*path, name])


def cli_markdown() -> str:
    """docs/cli.md: every command's --help, in command order."""
    from trackops.cli.main import app

    root = typer.main.get_command(app)
    parts = ["# Command reference", "",
             "Generated from `--help` by `python -m trackops.cli.docgen`; do not edit by hand.", ""]
    for path, command in _walk(root, ["trackops"]):
        name = " ".join(path)
        parent_ctx = None
        ctx = None
        for i, _ in enumerate(path):
            cmd = root if i == 0 else ctx.command.commands[path[i]]  # type: ignore[union-attr]
            ctx = cmd.make_context(path[i], [], parent=parent_ctx, resilient_parsing=True,
                                   terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
            parent_ctx = ctx
        text = command.get_help(ctx).rstrip()
        parts += [f"## `{name}`", "", "```text", text, "```", ""]
    return "\n".join(parts)


def completion_scripts() -> dict[str, str]:
    """The bash, zsh and fish completion scripts, keyed by file name."""
    completion_init()
    return {file: get_completion_script(prog_name="trackops", complete_var=COMPLETE_VAR, shell=shell) + "\n"
            for shell, file in COMPLETION_FILES.items()}


def generated_files(root: Path) -> dict[Path, str]:
    files = {root / "docs" / "cli.md": cli_markdown()}
    files.update({root / "completions" / name: text for name, text in completion_scripts().items()})
    return files


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    for path, text in generated_files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(root)}")


if __name__ == "__main__":
    main()
