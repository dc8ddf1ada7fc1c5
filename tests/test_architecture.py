"""The layers stay as docs/design.md draws them: imports point one way, SQL lives in the catalog, one
place builds the writer, one place refuses another model's vectors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("indexer", "searchd", "generation")
CLI_MODULES = {
    "indexer.cli",
    "indexer.watch.cli",
    "indexer.tags.cli",
    "generation.cli",
    "searchd.cli",
    "searchd.serve",
}
SQL_NAMES = {"select", "insert", "update", "delete", "text", "func", "case", "and_", "or_", "exists"}


def modules() -> dict[str, ast.Module]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            out[name] = ast.parse(path.read_text(), str(path))
    return out


def imports(tree: ast.Module) -> list[tuple[str, set[str]]]:
    """(module imported, names taken from it) for every import in the file, nested ones included."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, set()) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, {a.name for a in node.names}))
    return out


def test_imports_point_one_way():
    wrong = []
    for name, tree in modules().items():
        for target, _ in imports(tree):
            top = target.split(".")[0]
            if name.startswith("indexer") and top in ("searchd", "generation"):
                wrong.append(f"{name} imports {target}")
            if name.startswith("generation") and top == "searchd":
                wrong.append(f"{name} imports {target}")
    assert not wrong, "web -> searchd -> indexer, generation -> indexer (docs/design.md)\n" + "\n".join(wrong)


def test_library_code_does_not_import_a_cli_module():
    wrong = [
        f"{name} imports {target}"
        for name, tree in modules().items()
        if name not in CLI_MODULES
        for target, _ in imports(tree)
        if target in CLI_MODULES
    ]
    assert not wrong, "\n".join(wrong)


def test_sql_lives_in_the_catalog():
    wrong = [
        f"{name} builds SQL with {sorted(names & SQL_NAMES)}"
        for name, tree in modules().items()
        if not name.startswith("indexer.catalog")
        for target, names in imports(tree)
        if target.startswith("sqlalchemy") and names & SQL_NAMES
    ]
    assert not wrong, "put these queries in indexer/catalog/:\n" + "\n".join(wrong)


def calls(tree: ast.Module, callee: str) -> int:
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == callee or getattr(node.func, "attr", None) == callee)
    )


def test_one_place_builds_the_writer_and_one_refuses_another_model():
    for callee, home in (("Writer", "indexer.library"), ("ModelMismatch", "indexer.library")):
        sites = {name for name, tree in modules().items() if calls(tree, callee)}
        assert sites == {home}, f"{callee}(...) is called in {sorted(sites)}; only {home} may"


def test_building_the_cli_imports_no_model_runtime():
    """`photoseek --help`, `status` or a query to a running server must not pay for torch (seconds)."""
    heavy = "{'torch', 'open_clip', 'faiss', 'onnxruntime'}"
    code = f"import sys, searchd.cli; searchd.cli.build_cli(); print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", f"building the CLI imported {out.stdout.strip()}"


def test_building_the_server_imports_no_torch(tmp_path):
    """serve answers within seconds of its start: the app (generation's routes included) loads no torch;
    CLIP comes from the ONNX towers on a CPU, and generation's torch only when a job runs."""
    code = (
        "import sys; from pathlib import Path; from indexer.library import Library; "
        "from indexer.settings import Settings; from searchd.app import create_app; "
        f"create_app(Library.open(Settings(data_dir=Path({str(tmp_path)!r})))); "
        "print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", f"building the app imported {out.stdout.strip()}"
