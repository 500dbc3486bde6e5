"""One switch (every command's ``--quiet``) for every progress bar a command may show: the toolkit's own tqdm
bars, transformers' "Loading weights" bars and huggingface_hub's download bars, in this process and in the
processes it starts (the demo's stages, DataLoader workers), which inherit the environment variables."""
from __future__ import annotations

import os
import sys


def silence_progress_bars() -> None:
    """Turn every progress bar off for the rest of this process and its children."""
    # huggingface_hub reads HF_HUB_DISABLE_PROGRESS_BARS once, on import, and then no call can undo it: import
    # it first and switch its bars off by call (transformers' bars follow it), then set the variable for children
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    if "transformers" in sys.modules:  # imported earlier: it copied the hub's state then
        from transformers.utils import logging

        logging.disable_progress_bar()
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 takes its defaults from TQDM_* when imported: for children
