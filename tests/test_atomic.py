"""Cache folders are written whole or not at all, and a folder another process finished first is kept."""

from __future__ import annotations

import pytest

from scas_hub.atomic import build_aside


def test_a_folder_appears_only_when_complete_and_a_finished_one_is_kept(tmp_path):
    target = tmp_path / "cache" / "thing"
    with pytest.raises(RuntimeError), build_aside(target, "done") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed midway")
    assert not target.exists() and list((tmp_path / "cache").iterdir()) == []
    with build_aside(target, "done") as tmp:
        (tmp / "done").write_text("mine")
        (target / "done").parent.mkdir()  # another process finished meanwhile
        (target / "done").write_text("theirs")
    assert (target / "done").read_text() == "theirs" and list((tmp_path / "cache").iterdir()) == [target]
    with build_aside(tmp_path / "fresh", "done") as tmp:
        (tmp / "done").write_text("mine")
    assert (tmp_path / "fresh" / "done").read_text() == "mine"
