"""One switch for every progress bar a run draws: scas-hub's own, and those of the libraries it drives.

The scoring bars follow `ScoringConfig.progress`; `datasets` (parquet writing, loading),
`huggingface_hub` (downloads, uploads) and `transformers` (weight loading, saving) each have a
global switch, turned off here together.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator

_enabled = True


def disable_progress_bars() -> None:
    """Silence the progress bars of this process: scas-hub's, datasets', huggingface_hub's and transformers'."""
    global _enabled
    _enabled = False
    import datasets
    import huggingface_hub.utils

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    # transformers takes huggingface_hub's setting when it is imported; switch it too if it already was
    if "transformers" in sys.modules:
        import transformers.utils.logging

        transformers.utils.logging.disable_progress_bar()


def progress_bars_enabled() -> bool:
    """False after `disable_progress_bars()`."""
    return _enabled


@contextlib.contextmanager
def bars_without_switch() -> Iterator[None]:
    """Around a library call that draws a plain tqdm bar no switch reaches (transformers' GGUF
    conversion): its stderr is dropped while bars are disabled. Such calls print nothing else
    worth keeping; their errors still propagate."""
    if _enabled:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield
