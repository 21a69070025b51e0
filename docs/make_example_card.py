"""Regenerate docs/example_card/: the card of the offline demo, published twice (v1, v2) to a fake Hub.

    .venv/bin/python docs/make_example_card.py

Runs `curate` on the bundled demo corpus with the embedded SmolLM2-135M student (about a minute on a
laptop CPU), pushes it as v1 (λ = 0.5) and v2 (λ = 0.3, scores from a throwaway score cache; both
strategy `scas`: an ablation of another strategy would go to a repo of its own) to an in-process
fake Hub, and copies v2's README.md and figures here (set SCAS_HUB_SCORE_CACHE to keep the scores
for the next regeneration). Nothing leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ID = "my-org/scas-smollm2-135m"


def main(dest: Path = HERE / "example_card") -> None:
    sys.path.insert(0, str(HERE.parent))
    from scas_hub.testing.fake_hub import FakeHub
    from scas_hub.testing.loopback import free_port

    port = free_port()
    # the Hub endpoint is read when huggingface_hub is imported: set it before importing scas_hub
    os.environ.update(
        HF_ENDPOINT=f"http://127.0.0.1:{port}",
        HF_HUB_DISABLE_XET="1",
        HF_TOKEN="hf_example",
        HF_HOME=tempfile.mkdtemp(prefix="scas-example-hf-"),
        HF_UPDATE_DOWNLOAD_COUNTS="0",
        SCAS_HUB_SCORE_CACHE=os.environ.get("SCAS_HUB_SCORE_CACHE") or tempfile.mkdtemp(prefix="scas-example-scores-"),
    )
    with FakeHub(port=port), tempfile.TemporaryDirectory() as tmp:
        from scas_hub import PublishConfig, SelectionConfig, curate

        out = Path(tmp) / "scas-smollm2-135m"
        curate("smollm2-135m", "demo", out, publishing=PublishConfig(push=REPO_ID))
        curate(
            "smollm2-135m", "demo", out, selection=SelectionConfig(lam=0.3), publishing=PublishConfig(push=REPO_ID)
        )  # every score from the cache
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copy(out / "README.md", dest / "README.md")
        shutil.copytree(out / "figures", dest / "figures")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
