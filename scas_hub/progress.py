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


@contextlib.contextmanager
def progress_bars_off() -> Iterator[None]:
    """`disable_progress_bars()` for the duration of a block; the previous settings come back after it,
    so one `main([..., "--no-progress"])` call in a notebook or test does not silence later ones."""
    global _enabled
    import datasets
    import huggingface_hub.utils

    before = (_enabled, datasets.is_progress_bar_enabled(), huggingface_hub.utils.are_progress_bars_disabled())
    transformers_before = None
    if "transformers" in sys.modules:
        import transformers.utils.logging

        transformers_before = transformers.utils.logging.is_progress_bar_enabled()
    disable_progress_bars()
    try:
        yield
    finally:
        _enabled = before[0]
        if before[1]:
            datasets.enable_progress_bars()
        if not before[2]:
            huggingface_hub.utils.enable_progress_bars()
        if "transformers" in sys.modules:
            import transformers.utils.logging

            if transformers_before is not False:  # on before, or imported during the block (default on)
                transformers.utils.logging.enable_progress_bar()


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
