"""Loading (or saving) a transformers model without its "Loading weights" ("Writing model shards") progress bar."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def loading_quietly() -> Iterator[None]:
    """transformers draws a bar for every model it loads, on stderr even where that is no
    terminal, and the judge's small local model loads in well under a second: the bar is
    noise in a run's output. Restored afterwards (another library's downloads keep theirs)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            enable_progress_bar()


def enable_progress_bar() -> None:
    """Give transformers its progress bar back. Where HF_HUB_DISABLE_PROGRESS_BARS is set
    (kgalign's commands set it), huggingface_hub keeps its own bars off and says so in a
    UserWarning, on every call: that warning is not shown."""
    from transformers.utils import logging as hf_logging

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)
        hf_logging.enable_progress_bar()
