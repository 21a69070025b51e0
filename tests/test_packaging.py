"""The wheel ships every package: pyproject lists packages by hand (builders/ and cards/ are mapped in)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "scas_hub").rglob("__init__.py")}
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    mapped = {name for name in listed if name.startswith("scas_hub.") and name.count(".") == 1} - on_disk
    for name in mapped:
        assert (ROOT / config["package-dir"][name]).is_dir(), name
