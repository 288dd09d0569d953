"""The architecture's import rules, checked on the source: dependencies point one way."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "trackops"


def imports_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def all_modules():
    return [p for p in SRC.rglob("*.py")]


def test_trackops_never_imports_mlflow():
    offenders = [str(p.relative_to(SRC)) for p in all_modules()
                 if any(m == "mlflow" or m.startswith("mlflow.") for m in imports_of(p))]
    assert not offenders


def test_typer_and_rich_live_only_in_cli():
    offenders = [str(p.relative_to(SRC)) for p in all_modules()
                 if p.parent.name != "cli" and "cli" not in p.relative_to(SRC).parts
                 and any(m.split(".")[0] in ("typer", "rich", "click") for m in imports_of(p))]
    assert not offenders


def test_services_and_lower_layers_never_import_cli_or_server():
    offenders = []
    for p in all_modules():
        layer = p.relative_to(SRC).parts[0]
        if layer in ("cli", "server", "__main__.py"):
            continue
        if any(m.startswith(("trackops.cli", "trackops.server")) for m in imports_of(p)):
            offenders.append(str(p.relative_to(SRC)))
    assert not offenders
