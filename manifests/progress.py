"""One switch (every command's ``--quiet``) for every progress bar a command may show: the toolkit's own tqdm
bars, transformers' "Loading weights" bars and huggingface_hub's download bars, in this process and in the
processes it starts (the demo's stages, DataLoader workers), which inherit the environment variables."""
from __future__ import annotations

import os
import sys


def silence_progress_bars() -> None:
    """Turn every progress bar off for the rest of this process and its children."""
    os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 takes its defaults from TQDM_* when imported: for children
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read by huggingface_hub (and so transformers) on import
    if "huggingface_hub" in sys.modules:  # already imported: the variable was read before it was set
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging

        logging.disable_progress_bar()
