"""The Makefile passes only what the user set, and its defaults are the CLI's (`make -n`, no run)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from scas_hub.cli import build_parser
from scas_hub.constants import DEFAULT_STUDENT
from scas_hub.pipeline import default_out

ROOT = Path(__file__).resolve().parents[2]


def make_args(target: str, *variables: str) -> list[str]:
    """The arguments `make TARGET VARIABLES...` gives `scas-hub TARGET`."""
    dry = subprocess.run(
        ["make", "-n", "-s", "-C", str(ROOT), target, *variables], capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    line = next(line for line in dry.stdout.replace("\\\n", " ").splitlines() if f"scas-hub {target}" in line)
    words = shlex.split(line)
    return words[words.index(target) + 1 :]


def test_make_curate_passes_only_the_default_student():
    assert make_args("curate") == ["--student", DEFAULT_STUDENT]


@pytest.mark.parametrize(
    ("target", "required"),
    [("train", ["--dataset", str(default_out(DEFAULT_STUDENT))]), ("rounds", []), ("ablate", ["--eval", "demo"])],
)
def test_what_make_passes_by_default_is_the_clis_default(target, required):
    passed = make_args(target)
    assert build_parser().parse_args([target, *passed]) == build_parser().parse_args([target, *required])


def test_make_reads_the_folder_curate_writes_for_a_hub_student():
    student = "Qwen/Qwen2.5-1.5B"
    assert make_args("train", f"STUDENT={student}")[:2] == ["--dataset", str(default_out(student))]
    assert make_args("select", f"STUDENT={student}")[:2] == ["--candidates", str(default_out(student))]
