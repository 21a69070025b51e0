"""The card's figures draw names as written: a `$` in a teacher's name is text, not mathtext."""

from __future__ import annotations

from scas_hub.publish.figures import plot_selected_share

NOT_TEX = "gpt $\\frac{$ 4"  # mathtext would raise on this (a broken \frac) while curate writes its figures


def test_a_teacher_name_with_dollars_is_drawn_as_text(tmp_path):
    teachers = [
        {"teacher": NOT_TEX, "share": 0.75, "candidate_share": 0.5},
        {"teacher": "plain", "share": 0.25, "candidate_share": 0.5},
    ]
    path = tmp_path / "figures" / "selected_share.png"
    plot_selected_share(teachers, path)
    assert path.read_bytes().startswith(b"\x89PNG")
