"""The package's layers (HOUSE.md / issue 21): a torch-free core, and imports that only go down.

(a) `import scas_hub.records`, `python -m scas_hub --help` and `scas-hub select` on a small published
folder run in a fresh interpreter without ever loading torch; (b) no module of the package imports a
module of a higher layer (every import counts, module-level or inside a function).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from scas_hub import ScoringConfig, SelectionConfig, curate
from scas_hub.testing.corpus import synthetic_pool, write_pool

PACKAGE = Path(__file__).resolve().parent.parent / "scas_hub"

# lowest first; a module may import its own layer and the ones below, never one above
LAYERS: list[list[str]] = [
    [
        "constants",
        "errors",
        "records",
        "proxy",
        "schema",
        "atomic",
        "distributed",
        "hub_access",
        "slug",
        "facts",
        "progress",
        "stats",
        "report",
        "compare",
        "run_record",
    ],
    ["source", "verify", "builders"],
    ["student"],
    ["score"],
    ["select"],
    ["publish"],
    ["train", "evaluate", "generate"],
    ["rounds", "loop", "ablate", "pipeline", "several_students"],
    ["cli", "__main__", "testing", "cards"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}

# Upward imports not yet moved out; each entry is (importing module, imported module). The list only shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = {
    ("scas_hub.generate.routing", "scas_hub.pipeline"),  # `generate --route` curates what it generated
}

NO_TORCH = (
    "import runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "else:\n"
    "    code = 0\n"
    "loaded = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
    "print('LOADED:', ','.join(loaded))\n"
    "sys.exit(code)\n"
)


def run_module(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <argv>` in a fresh interpreter; it prints which heavy modules it loaded."""
    return subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, cwd=cwd, timeout=300)


def loaded(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")]
    assert lines, result.stdout + result.stderr
    return lines[-1].removeprefix("LOADED:").strip()


def test_import_records_loads_no_torch():
    code = (
        "import sys, scas_hub.records, scas_hub.proxy, scas_hub.schema\n"
        "from scas_hub import ScoringConfig, SelectionConfig\n"  # the configs are core too
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]"


def test_help_loads_no_torch():
    result = run_module("scas_hub", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert loaded(result) == ""


@pytest.fixture(scope="module")
def published(tiny_qwen_dir, tmp_path_factory) -> Path:
    corpus = write_pool(
        synthetic_pool(4, teachers=3, max_words=30, seed=3, subset="mini"), tmp_path_factory.mktemp("corpus")
    )
    out = tmp_path_factory.mktemp("published") / "scas-tiny"
    curate(
        str(tiny_qwen_dir), str(corpus), out, scoring=ScoringConfig(progress=False), selection=SelectionConfig(seed=7)
    )
    return out


def test_select_from_published_folder_loads_no_torch(published, tmp_path):
    out = tmp_path / "reselected"
    result = run_module("scas_hub", "select", "--candidates", str(published), "--strategy", "argmin", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "selection_stats.json").is_file()
    assert loaded(result) == ""


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[str]:
    """Every scas_hub module `path` imports (relative imports resolved; `from x import y` may name y)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{alias.name}" for alias in node.names]
    return [m for m in found if m.split(".")[0] == "scas_hub" and m != "scas_hub"]


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def test_imports_only_go_down():
    upward = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        if source == "scas_hub":  # the facade: lazily names the public API of every layer
            continue
        here = layer_of(source)
        assert here is not None, f"{source} is in no layer of tests/test_layering.py"
        for target in imported_modules(path):
            there = layer_of(target)
            if there is not None and there > here:
                upward.add((source, ".".join(target.split(".")[:2])))
    assert upward - KNOWN_UPWARD == set(), "imports from a lower layer to a higher one"
    assert KNOWN_UPWARD - upward == set(), "fixed: remove from KNOWN_UPWARD"
