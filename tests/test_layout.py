"""Which room imports which (docs/architecture.md): nothing on the daily path imports the
development tools, publishing has no import circle, the package never imports Airflow, and
the parsers use nothing of the package but money. Read from the source (imports inside
functions too), and checked by importing, without services."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tally import config

PACKAGE = Path(config.__file__).resolve().parent
ROOT = PACKAGE.parent.parent
DEVTOOLS = "tally.devtools"
# The CLI's commands that are development tools themselves; they import devtools when run.
CLI_DEV_COMMANDS = {"cmd_generate", "cmd_demo", "cmd_bench"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _in_package(name: str | None) -> bool:
    return (name or "").split(".")[0] == "tally"


def _imports(path: Path, keep=_in_package) -> list[tuple[str, str | None]]:
    """(module imported, top-level function it is imported in, or None) for every import in
    the file of a module `keep` accepts (tally's, by default), those inside functions too."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names if keep(alias.name))
            elif isinstance(child, ast.ImportFrom) and keep(child.module):
                for alias in child.names:
                    name = f"{child.module}.{alias.name}"
                    found.append((name if _in_package(name) and _is_module(name)
                                  else child.module, inner))
            visit(child, inner)

    visit(tree, None)
    return found


def _product_files() -> list[Path]:
    """Every module of the package outside devtools, and the DAG files."""
    package = [p for p in sorted(PACKAGE.rglob("*.py")) if "devtools" not in p.parts]
    return package + sorted((ROOT / "dags").glob("*.py"))


def test_nothing_on_the_daily_path_imports_devtools():
    offenders = []
    for path in _product_files():
        for module, function in _imports(path):
            if not (module == DEVTOOLS or module.startswith(DEVTOOLS + ".")):
                continue
            if path == PACKAGE / "cli.py" and function in CLI_DEV_COMMANDS:
                continue  # imported when `tally generate`, `demo` or `bench` runs, only then
            offenders.append(f"{path.relative_to(ROOT)} ({function or 'module level'}): {module}")
    assert offenders == []


def test_importing_the_product_loads_no_devtools():
    """Every module outside devtools imported in a fresh interpreter, and the CLI's parser
    built: no tally.devtools module is loaded."""
    modules = [_module_name(p) for p in _product_files() if p.is_relative_to(PACKAGE)]
    script = textwrap.dedent(f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        sys.modules["tally.cli"].build_parser()
        print(sorted(m for m in sys.modules if m.startswith({DEVTOOLS!r})))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(PACKAGE.parent), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_renderers_depend_on_the_report_model_not_on_reports():
    publish = PACKAGE / "publish"
    imported = {name: {m for m, _ in _imports(publish / f"{name}.py")}
                for name in ("excel", "html_report", "model", "reports")}
    assert "tally.publish.model" in imported["excel"] & imported["html_report"]
    assert "tally.publish.reports" not in imported["excel"] | imported["html_report"]
    # The model is the bottom of publishing: it imports no other part of it.
    assert not {m for m in imported["model"] if m.startswith("tally.publish")}


def test_publishing_has_no_import_circle():
    """Within tally.publish, following every import (those inside functions too) never leads
    back to where it started."""
    publish = PACKAGE / "publish"
    graph = {_module_name(p): {m for m, _ in _imports(p) if m.startswith("tally.publish")}
             for p in publish.glob("*.py")}

    def circle_from(start, module, seen):
        for following in graph.get(module, ()):
            if following == start:
                return [*seen, following]
            if following not in seen:
                found = circle_from(start, following, [*seen, following])
                if found:
                    return found
        return None

    circles = [c for start in graph if (c := circle_from(start, start, [start]))]
    assert circles == []


def test_the_package_never_imports_airflow():
    """Airflow's objects live in dags/; the package runs Airflow only as a subprocess."""
    def airflow(name):
        return (name or "").split(".")[0] in {"airflow", "cosmos"}

    found = [f"{p.relative_to(ROOT)}: {m}" for p in sorted(PACKAGE.rglob("*.py"))
             for m, _ in _imports(p, keep=airflow)]
    assert found == []


def test_parsers_use_nothing_of_the_package_but_money():
    """formats/ is pure: no settings, storage, database or loading, whatever it imports."""
    found = {m for p in (PACKAGE / "formats").glob("*.py") for m, _ in _imports(p)}
    assert {m for m in found if m != "tally.money" and not m.startswith("tally.formats")} == set()
