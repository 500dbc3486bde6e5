"""Released CLAP checkpoints (training/released.py) against the reference packages' own models.

Each reference model (msclap 1.3.4's CLAP 2022 and 2023, laion-clap 1.1.7's HTSAT-tiny + RoBERTa) is built
from its package's code with random weights (nothing downloaded; text towers reduced, audio towers at their
published sizes), every parameter perturbed, BatchNorm statistics calibrated on real-looking sounds, and saved
in the released file layout; our loader must rebuild it so that audio and text embeddings and similarity
logits agree at the released models' input lengths (5 s, 7 s, 10 s = 1001 frames, and 20 s).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference_clap import (bert_folder, calibrate_batchnorm, gpt2_folder, laion_reference,
                                  missing_reference_packages, msclap_reference, perturb_parameters, roberta_folder,
                                  sounds)
from training.pretrained import CheckpointMismatchError
from training.released import detect_format, load_any_checkpoint, load_released

_missing = missing_reference_packages()
needs_reference = pytest.mark.skipif(_missing is not None, reason=_missing or "")

TEXTS = ["a dog barks twice in the distance", "rain on a tin roof", "an old car engine starts and idles",
         "birds singing at dawn near a stream"]
# Normalised embeddings (unit vectors) and logits: float32 paths that differ only in operation order
# (torch.stft vs torchlibrosa's conv1d STFT, scaled_dot_product_attention vs explicit softmax).
EMB_ATOL = 5e-5
LOGIT_ATOL = 1e-3


@pytest.fixture(scope="module")
def text_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return {"bert": bert_folder(root / "bert-small"), "gpt2": gpt2_folder(root / "gpt2-small"),
            "roberta": roberta_folder(root / "roberta-small")}


def _assert_close(ours: torch.Tensor, ref: torch.Tensor, atol: float, what: str) -> float:
    diff = float((ours - ref).abs().max())
    assert ours.shape == ref.shape, what
    assert diff < atol, f"{what}: max difference {diff:.3g} (tolerance {atol})"
    return diff


def _msclap_tokens(tokenizer, texts: list[str], length: int) -> dict:
    """msclap's CLAPWrapper.preprocess_text: encode_plus per text, padded to text_len, stacked (transformers 5
    dropped encode_plus; calling the tokenizer on one text is the same)."""
    toks = [tokenizer(text=t, add_special_tokens=True, max_length=length, padding="max_length",
                      return_tensors="pt") for t in texts]
    return {k: torch.cat([t[k] for t in toks]) for k in toks[0]}


def _msclap_roundtrip(tmp_path, version: str, folder, seconds: list[float], extra_keys: dict | None = None):
    from transformers import AutoTokenizer

    ref = msclap_reference(version, folder, seed=1)
    perturb_parameters(ref, seed=2)
    calibrate_batchnorm(ref.audio_encoder, [sounds(2, seconds[0], 44100, seed=3)])
    path = tmp_path / f"CLAP_weights_{version}.pth"
    torch.save({"model": {**ref.state_dict(), **(extra_keys or {})}}, path)

    model, report = load_released(path, text_model=str(folder))
    assert report.shares == {"model keys loaded": 1.0, "file keys mapped": 1.0}
    assert report.missing == [] and report.unexpected == [] and report.frontend_mismatch == []
    diffs = {}
    with torch.no_grad():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if version == "2023":
            tokenizer.add_special_tokens({"pad_token": "!"})
        ref_text = F.normalize(ref.caption_encoder(_msclap_tokens(tokenizer, TEXTS, 100 if version == "2022" else 77)),
                               dim=-1)
        diffs["text"] = _assert_close(model.encode_text(TEXTS), ref_text, EMB_ATOL, "text embeddings")
        for i, s in enumerate(seconds):
            x = sounds(2 if i == 0 else 1, s, 44100, seed=10 + i)
            ref_audio = F.normalize(ref.audio_encoder(x)[0], dim=-1)
            ours = model.encode_audio(x)
            if i == 0:  # the calibrated reference tells its two sounds apart far beyond the tolerance
                diffs["distinct sounds"] = float((ref_audio[0] - ref_audio[1]).abs().max())
                assert diffs["distinct sounds"] > 20 * EMB_ATOL
            diffs[f"audio {s:g} s"] = _assert_close(ours, ref_audio, EMB_ATOL, f"audio embeddings at {s} s")
            logits = ref.logit_scale.exp() * ref_text @ ref_audio.T
            diffs[f"logits {s:g} s"] = _assert_close(model.scale() * model.encode_text(TEXTS) @ ours.T, logits,
                                                     LOGIT_ATOL, f"logits at {s} s")
    return model, report, diffs


@needs_reference
def test_msclap_2022_equals_reference(tmp_path, text_folders):
    model, report, diffs = _msclap_roundtrip(tmp_path, "2022", text_folders["bert"], [5.0, 20.0])
    assert detect_format(torch.load(tmp_path / "CLAP_weights_2022.pth", weights_only=True)) == "msclap-2022"
    cfg = model.config
    assert cfg.audio.encoder == "cnn14" and cfg.audio.clip_seconds == 5.0
    assert (cfg.audio.frontend.sample_rate, cfg.audio.frontend.fmax) == (44100, 14000.0)
    assert cfg.text.pooling == "first" and cfg.projection.dim == 1024
    assert any("fc_audioset" in k for k in report.skipped) and any("pooler" in k for k in report.skipped)
    print("msclap-2022", len(report.loaded), "tensors,", diffs)


@needs_reference
def test_msclap_2023_equals_reference(tmp_path, text_folders):
    # GPT-2 causal-mask buffers as older transformers saved them in the released file
    old = {f"caption_encoder.base.h.{i}.attn.{b}": torch.ones(1, 1, 128, 128) for i in range(2)
           for b in ("bias", "masked_bias")}
    model, report, diffs = _msclap_roundtrip(tmp_path, "2023", text_folders["gpt2"], [7.0, 20.0], old)
    cfg = model.config
    assert cfg.audio.htsat.input_fit == "stretch" and cfg.audio.clip_seconds == 7.0
    assert cfg.audio.frontend.mel_sample_rate == 32000 and cfg.text.pooling == "last"
    assert set(old) <= set(report.skipped)
    # the first token alone does not decide a GPT-2 text's embedding
    a, b = model.encode_text(["a dog barks", "a car passes"])
    assert float((a - b).abs().max().detach()) > 1e-3
    print("msclap-2023", len(report.loaded), "tensors,", diffs)


@needs_reference
def test_laion_clap_equals_reference(tmp_path, text_folders):
    from transformers import AutoTokenizer

    from training.inference import Embedder

    folder = text_folders["roberta"]
    ref = laion_reference(folder, seed=5)
    perturb_parameters(ref, seed=6)
    calibrate_batchnorm(ref.audio_branch, [{"waveform": sounds(2, 10.0, 48000, seed=7)}])
    path = tmp_path / "630k-audioset-best.pt"
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(130)[None]
    torch.save({"epoch": 45, "state_dict": state}, path)

    model, report = load_released(path, text_model=str(folder))
    assert report.shares == {"model keys loaded": 1.0, "file keys mapped": 1.0}
    assert {"logit_scale_t", "text_transform.sequential.0.weight"} <= set(report.skipped)
    cfg = model.config
    assert (cfg.audio.frontend.sample_rate, cfg.audio.frontend.hop_size, cfg.audio.clip_samples) == (48000, 480, 480000)
    assert cfg.projection.kind == "mlp" and cfg.projection.dim == 512 and cfg.text.pooling == "pooler"
    diffs = {}
    with torch.no_grad():
        x = sounds(2, 10.0, 48000, seed=9)  # 1001 frames: stretched to HTS-AT's 1024
        ref_audio = ref.get_audio_embedding([{"waveform": w} for w in x])
        ours = model.encode_audio(x)
        diffs["distinct sounds"] = float((ref_audio[0] - ref_audio[1]).abs().max())
        assert diffs["distinct sounds"] > 20 * EMB_ATOL
        diffs["audio 10 s"] = _assert_close(ours, ref_audio, EMB_ATOL, "audio embeddings at 10 s")
        model.audio_encoder.htsat.cfg.input_fit = "repeat"  # ours: repeat-padding 1001 frames to 1024 differs
        diffs["audio 10 s, input_fit repeat"] = float((model.encode_audio(x) - ref_audio).abs().max())
        assert diffs["audio 10 s, input_fit repeat"] > 20 * EMB_ATOL
        model.audio_encoder.htsat.cfg.input_fit = "stretch"
        tok = AutoTokenizer.from_pretrained(str(folder))(TEXTS, padding="max_length", truncation=True, max_length=77,
                                                         return_tensors="pt")
        ref_text = ref.get_text_embedding(dict(tok))
        diffs["text"] = _assert_close(model.encode_text(TEXTS), ref_text, EMB_ATOL, "text embeddings")
        logits = ref.logit_scale_a.exp() * ref_audio @ ref_text.T
        diffs["logits 10 s"] = _assert_close(model.scale() * ours @ model.encode_text(TEXTS).T, logits, LOGIT_ATOL,
                                             "logits")
        # 20 s through the Embedder: the mean of the reference's embeddings of its two 10 s windows
        long = sounds(1, 20.0, 48000, seed=10)[0]
        halves = ref.get_audio_embedding([{"waveform": long[:480000]}, {"waveform": long[480000:]}])
        want = F.normalize(halves.mean(0), dim=-1)
        got = torch.from_numpy(Embedder(model).embed_audio([long.numpy()], 48000)[0])
        diffs["audio 20 s (Embedder)"] = _assert_close(got, want, EMB_ATOL, "Embedder at 20 s")
    print("laion-clap", len(report.loaded), "tensors,", diffs)


@needs_reference
def test_laion_larger_htsat_variant_maps_by_layout():
    """HTSAT-base (LAION's larger audio branch, embed 128, depths 2-2-12-2): the architecture read from the
    file's shapes has exactly the reference's keys and shapes (no forward pass: the layout is what differs)."""
    from tests.reference_clap import laion_audio_branch
    from training.encoders.htsat import HTSAT, HTSATConfig
    from training.released import _htsat_config

    theirs = {k: v for k, v in laion_audio_branch("base").state_dict().items() if "extractor" not in k}
    derived = _htsat_config(theirs, "")
    assert (derived["embed_dim"], derived["depths"], derived["num_heads"]) == (128, [2, 2, 12, 2], [4, 8, 16, 32])
    with torch.device("meta"):
        ours = HTSAT(HTSATConfig.from_dict({**derived, "classes_num": 527}), 64).state_dict()
    assert set(ours) == set(theirs)
    assert [k for k in ours if ours[k].shape != theirs[k].shape] == []


# --- refusals (cheap: no reference model needed) -------------------------------------------------------------
def _tiny_msclap_2022_state(folder) -> dict:
    """A msclap-2022-layout file of a small Cnn14 + BERT (sizes are read from the shapes)."""
    from training.frontend import FrontendConfig, slaney_mel_filterbank
    from training.model import CLAP, CLAPConfig

    cfg = CLAPConfig.from_dict({"audio": {"cnn14": {"channels": [4, 8, 8, 16, 16, 32]}},
                                "text": {"name": str(folder), "pretrained": False},
                                "projection": {"dim": 16}})
    ours = CLAP(cfg, load_pretrained=False).state_dict()
    back = {"audio_encoder.cnn14.": "audio_encoder.base.", "audio_projection.": "audio_encoder.projection.",
            "text_encoder.model.": "caption_encoder.base.", "text_projection.": "caption_encoder.projection."}
    state = {}
    for k, v in ours.items():
        old = next((o for o in back if k.startswith(o)), None)
        state[back[old] + k[len(old):] if old else k] = v
    state["audio_encoder.base.logmel_extractor.melW"] = slaney_mel_filterbank(
        FrontendConfig(sample_rate=44100, fmax=14000))
    return state


def test_a_checkpoint_matching_nothing_is_refused_with_its_keys(tmp_path, text_folders):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"encoder.conv.weight": torch.zeros(3), "decoder.fc.bias": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointMismatchError, match=r"cannot tell the checkpoint's format.*encoder\.conv\.weight"):
        load_released(path)
    with pytest.raises(CheckpointMismatchError, match=r"not a msclap-2022 checkpoint.*decoder\.fc\.bias"):
        load_released(path, format="msclap-2022", text_model=str(text_folders["bert"]))
    with pytest.raises(CheckpointMismatchError, match="cannot tell"):
        load_any_checkpoint(path)


def test_partial_loads_need_an_explicit_share(tmp_path, text_folders, capsys):
    folder = str(text_folders["bert"])
    state = _tiny_msclap_2022_state(text_folders["bert"])
    full = tmp_path / "full.pth"
    torch.save({"model": state}, full)
    model, report = load_released(full, text_model=folder)
    assert report.shares["model keys loaded"] == 1.0 and report.frontend_mismatch == []
    assert torch.equal(model.audio_encoder.cnn14.conv_block2.conv1.weight,
                       state["audio_encoder.base.conv_block2.conv1.weight"])

    partial = {k: v for k, v in state.items() if not k.startswith("caption_encoder.projection.")}
    partial["audio_encoder.base.extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save({"model": partial}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_released(path, text_model=folder)
    msg = str(err.value)
    assert "text_projection.linear1.weight" in msg and "audio_encoder.base.extra.weight" in msg
    model, report = load_released(path, text_model=folder, min_share=0.9)
    assert "text_projection.layer_norm.bias" in report.missing
    assert report.unexpected == ["audio_encoder.base.extra.weight"]
    assert 0.9 < report.shares["model keys loaded"] < 1.0
    # the commands: refused with the keys (exit status 2), accepted with --min-share / min_share
    from training.cli import eval_main
    from training.inference import Embedder

    assert eval_main(["--checkpoint", str(path), "--text-model", folder, "--manifest", "unused.csv"]) == 2
    assert "text_projection.linear1.weight" in capsys.readouterr().err
    assert Embedder.from_checkpoint(path, text_model=folder, min_share=0.9).window == 5 * 44100

    # a differing front-end (here: a filterbank of another band) is refused by a full load
    other = dict(state)
    from training.frontend import FrontendConfig, slaney_mel_filterbank
    other["audio_encoder.base.logmel_extractor.melW"] = slaney_mel_filterbank(FrontendConfig(fmax=8000))
    torch.save({"model": other}, path)
    with pytest.raises(CheckpointMismatchError, match="front-end"):
        load_released(path, text_model=folder)


def test_fused_laion_models_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "630k-fusion-best.pt"
    torch.save({"state_dict": {"module.audio_branch.patch_embed.fusion_model.local_att.0.weight": torch.zeros(1),
                               "module.text_branch.pooler.dense.bias": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointMismatchError, match="fused LAION-CLAP"):
        load_released(path)


def test_training_evaluation_and_search_take_a_released_file(tmp_path, text_folders, capsys):
    """init_from (frozen audio: its weights must stay the file's), the run folder's load report, and the
    released file itself through wt5k-eval and Embedder.from_checkpoint."""
    import json

    from training.checkpoint import load_checkpoint
    from training.cli import eval_main
    from training.config import RunConfig
    from training.inference import Embedder
    from training.train import train
    from tests.training_fixtures import make_manifest

    folder = str(text_folders["bert"])
    state = _tiny_msclap_2022_state(text_folders["bert"])
    released = tmp_path / "CLAP_weights_2022.pth"
    torch.save({"model": state}, released)
    manifest = make_manifest(tmp_path / "m", 4, seconds=1.5)
    cfg = RunConfig.from_dict({
        "name": "from_msclap", "out_dir": str(tmp_path / "runs"), "epochs": 1, "batch_size": 4,
        "init_from": {"checkpoint": str(released), "text_model": folder},
        "model": {"audio": {"freeze": True}},
        "data": {"train": [str(manifest)], "num_workers": 0, "crop_s": 1.0}})
    summary = train(cfg, show_progress=False)
    run_dir = tmp_path / "runs" / "from_msclap"
    report = json.loads((run_dir / "load_report.json").read_text())["released"]
    assert report["shares"] == {"model keys loaded": 1.0, "file keys mapped": 1.0}
    assert "audio_encoder.base.logmel_extractor.melW" in report["skipped"]
    saved = json.loads((run_dir / "config.json").read_text())["model"]
    assert saved["audio"]["frontend"]["fmax"] == 14000.0 and saved["audio"]["cnn14"]["channels"][-1] == 32
    latest = load_checkpoint(run_dir / "latest.pt")["model"]
    assert summary["step"] == 1
    assert torch.equal(latest["audio_encoder.cnn14.conv_block3.conv2.weight"],
                       state["audio_encoder.base.conv_block3.conv2.weight"])
    assert not torch.equal(latest["text_projection.linear1.weight"], state["caption_encoder.projection.linear1.weight"])

    assert eval_main(["--checkpoint", str(released), "--text-model", folder, "--manifest", str(manifest),
                      "--json", str(tmp_path / "eval.json")]) == 0
    assert "msclap-2022/CLAP_weights_2022" in capsys.readouterr().out
    emb = Embedder.from_checkpoint(released, text_model=folder)
    assert emb.sample_rate == 44100 and emb.window == 5 * 44100
    assert emb.embed_texts(["a dog barks"]).shape == (1, 16)

    from search.cli import main as search_main

    index = tmp_path / "index"
    assert search_main(["index", "--checkpoint", str(released), "--text-model", folder, "--manifest", str(manifest),
                        "--out", str(index)]) == 0
    assert json.loads((index / "index.json").read_text())["text_model"] == folder
    capsys.readouterr()
    assert search_main(["text", "dog sound 1", "--index", str(index), "-k", "2"]) == 0  # reads it as indexed
    assert "test:" in capsys.readouterr().out


def test_an_unreadable_text_model_is_a_clear_error(tmp_path, text_folders):
    path = tmp_path / "CLAP_weights_2022.pth"
    torch.save({"model": _tiny_msclap_2022_state(text_folders["bert"])}, path)
    with pytest.raises(ValueError, match="cannot be read; released files hold no tokenizer"):
        load_released(path, text_model=str(tmp_path / "no-such-folder"))


def test_unreadable_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    full = tmp_path / "full.pt"
    torch.save({"state_dict": {"audio_branch.bn0.weight": torch.zeros(64)}}, full)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    for path in (junk, truncated):
        with pytest.raises(CheckpointMismatchError, match="not a readable torch checkpoint"):
            load_any_checkpoint(path)


def test_the_commands_show_the_load_report_on_stderr(tmp_path, text_folders, capsys):
    """wt5k-eval, wt5k-search and wt5k-train log a clean load's summary (INFO) on stderr; --quiet keeps only
    warnings (a partial load's summary) and errors."""
    import json
    import re

    from search.cli import main as search_main
    from tests.training_fixtures import make_manifest
    from training.cli import eval_main, train_main

    folder = str(text_folders["bert"])
    state = _tiny_msclap_2022_state(text_folders["bert"])
    released = tmp_path / "CLAP_weights_2022.pth"
    torch.save({"model": state}, released)
    manifest = make_manifest(tmp_path / "m", 2, seconds=1.0)
    summary = re.compile(r"INFO training\.pretrained: msclap-2022 \S*CLAP_weights_2022\.pth: loaded \d+ tensors; "
                         r"model keys loaded 100\.0%; file keys mapped 100\.0%; skipped: .*mel filterbank equals")
    common = ["--checkpoint", str(released), "--text-model", folder]

    assert eval_main([*common, "--manifest", str(manifest), "--json", str(tmp_path / "e.json")]) == 0
    assert summary.search(capsys.readouterr().err)
    assert eval_main([*common, "--manifest", str(manifest), "--json", str(tmp_path / "e.json"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""

    index = tmp_path / "index"
    assert search_main(["index", *common, "--manifest", str(manifest), "--out", str(index)]) == 0
    assert summary.search(capsys.readouterr().err)
    assert search_main(["text", "a sound", "--index", str(index), "-k", "1"]) == 0  # a query loads it again
    assert summary.search(capsys.readouterr().err)
    assert search_main(["text", "a sound", "--index", str(index), "-k", "1", "--quiet"]) == 0
    assert capsys.readouterr().err == ""

    # --quiet keeps warnings: a partial load's summary is one
    partial = tmp_path / "partial.pth"
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("caption_encoder.projection.")}},
               partial)
    assert eval_main(["--checkpoint", str(partial), "--text-model", folder, "--min-share", "0.9", "--quiet",
                      "--manifest", str(manifest), "--json", str(tmp_path / "p.json")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"WARNING training\.pretrained: msclap-2022 \S*partial\.pth: .*missing: text_projection", err)

    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "name": "shown", "out_dir": str(tmp_path / "runs"), "epochs": 1, "batch_size": 2, "model": {},
        "init_from": {"checkpoint": str(released), "text_model": folder},
        "data": {"train": [str(manifest)], "num_workers": 0, "crop_s": 1.0}}))
    assert train_main(["--config", str(config)]) == 0
    assert summary.search(capsys.readouterr().err)


def test_files_holding_objects_beyond_tensors_need_trust_checkpoint(tmp_path, text_folders, capsys):
    """Released files written by PyTorch Lightning or training scripts hold e.g. an argparse.Namespace beside
    the weights: the safe loader refuses them, naming --trust-checkpoint, which loads them everywhere."""
    import argparse
    import json

    from search.cli import main as search_main
    from search.index import AudioIndex
    from tests.training_fixtures import make_manifest
    from training.cli import eval_main

    folder = str(text_folders["bert"])
    state = _tiny_msclap_2022_state(text_folders["bert"])
    path = tmp_path / "CLAP_weights_2022.pth"
    torch.save({"model": state, "hyper_parameters": argparse.Namespace(sample_rate=44100, fmax=14000)}, path)
    with pytest.raises(CheckpointMismatchError, match=r"--trust-checkpoint.*argparse\.Namespace"):
        load_any_checkpoint(path, text_model=folder)
    model, _ = load_any_checkpoint(path, text_model=folder, trusted=True)
    assert torch.equal(model.audio_encoder.cnn14.conv_block1.conv1.weight,
                       state["audio_encoder.base.conv_block1.conv1.weight"])

    manifest = make_manifest(tmp_path / "m", 2, seconds=1.0)
    common = ["--checkpoint", str(path), "--text-model", folder, "--quiet"]
    assert eval_main([*common, "--manifest", str(manifest), "--json", str(tmp_path / "e.json")]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert eval_main([*common, "--manifest", str(manifest), "--json", str(tmp_path / "e.json"),
                      "--trust-checkpoint"]) == 0
    capsys.readouterr()

    index = tmp_path / "index"
    assert search_main(["index", *common, "--manifest", str(manifest), "--out", str(index)]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert search_main(["index", *common, "--manifest", str(manifest), "--out", str(index),
                        "--trust-checkpoint"]) == 0
    assert "trust_checkpoint" not in json.loads((index / "index.json").read_text())  # trust is never stored
    capsys.readouterr()
    # a query of the index's own checkpoint needs the flag again: trust comes from the command, not the folder
    assert search_main(["text", "a sound", "--index", str(index), "-k", "1", "--quiet", "--json"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert search_main(["text", "a sound", "--index", str(index), "-k", "1", "--quiet", "--json",
                        "--trust-checkpoint"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 1 and hits[0]["id"] in {it["id"] for it in AudioIndex.load(index).items}
    # another --checkpoint on a query is read as its own flags say
    assert search_main(["text", "a sound", "--index", str(index), "--checkpoint", str(path), "--text-model", folder,
                        "--quiet"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
