"""Retrieval metrics on hand-computed cases (ties, several captions per audio) and against a brute-force
reference written straight from the definitions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.metrics import retrieval_metrics, selection_score


def test_hand_computed_with_a_tie_and_two_captions():
    # audios a, b; captions: c0 of a, c1 and c2 of b. sim[audio, caption]
    sim = torch.tensor([[0.9, 0.1, 0.5],
                        [0.2, 0.8, 0.5]])
    m = retrieval_metrics(sim, ["a", "b"], ["a", "b", "b"])
    # t2a: c0 -> a rank 1; c1 -> b rank 1; c2: a and b tie at 0.5 -> pessimistic rank 2
    assert m["t2a"]["R@1"] == pytest.approx(2 / 3)
    assert m["t2a"]["R@5"] == 1.0
    assert m["t2a"]["mAP@10"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert m["t2a"]["median_rank"] == 1.0
    assert m["t2a"]["mean_rank"] == pytest.approx(4 / 3)
    # a2t: a: c0 first (AP 1); b: c1 (0.8) then c2 (0.5) above c0 (0.2): ranks 1, 2 -> AP (1/1 + 2/2) / 2 = 1
    assert m["a2t"]["R@1"] == 1.0 and m["a2t"]["mAP@10"] == 1.0
    assert (m["n_audios"], m["n_captions"]) == (2, 3)


def test_constant_similarity_scores_worst_case_not_by_order():
    m = retrieval_metrics(torch.zeros(2, 3), ["a", "b"], ["a", "b", "b"])
    assert m["t2a"]["R@1"] == 0.0  # every caption's audio ties with the other one -> rank 2
    assert m["t2a"]["mAP@10"] == pytest.approx(0.5)
    # a2t: a has 1 caption behind 2 tied irrelevant ones: rank 3 -> AP 1/3;
    # b has 2 captions behind c0: ranks 2, 3 -> AP (1/2 + 2/3) / 2
    assert m["a2t"]["R@1"] == 0.0
    assert m["a2t"]["mAP@10"] == pytest.approx((1 / 3 + (1 / 2 + 2 / 3) / 2) / 2)
    assert m["a2t"]["mean_rank"] == pytest.approx((3 + 2) / 2)


def test_a2t_average_precision_normalised_by_relevant_count_capped_at_10():
    # one audio with 12 captions, one distractor caption of another audio ranked first
    n = 12
    sim = torch.zeros(2, n + 1)
    sim[0, :n] = torch.linspace(0.9, 0.1, n)  # relevant captions in order
    sim[0, n] = 1.0  # distractor (audio b's caption) above all of them
    sim[1, n] = 1.0
    m = retrieval_metrics(sim, ["a", "b"], ["a"] * n + ["b"])
    # a: relevant at ranks 2..13; within the top 10: ranks 2..10 are relevant hits 1..9
    expected_a = sum(j / (j + 1) for j in range(1, 10)) / 10
    assert m["a2t"]["mAP@10"] == pytest.approx((expected_a + 1.0) / 2)
    assert m["a2t"]["median_rank"] == 1.0  # lower median of best ranks (2, 1)
    assert m["a2t"]["R@1"] == 0.5


def _reference(sim: np.ndarray, audio_ids, cap_ids):
    """Straight from the definitions: sort with irrelevant items first among equal similarities."""
    def per_query(scores, relevant):
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], relevant[i]))
        ranks = [pos + 1 for pos, i in enumerate(order) if relevant[i]]
        ap = sum((j + 1) / r for j, r in enumerate(ranks) if r <= 10) / min(len(ranks), 10)
        return ranks[0], ap

    out = {}
    for name, mat, rel in (
        ("t2a", sim.T, [[cap_ids[c] == a for a in audio_ids] for c in range(len(cap_ids))]),
        ("a2t", sim, [[cap_ids[c] == a for c in range(len(cap_ids))] for a in audio_ids]),
    ):
        best, aps = zip(*(per_query(list(mat[q]), rel[q]) for q in range(len(mat))))
        best = np.array(best)
        out[name] = {**{f"R@{k}": float(np.mean(best <= k)) for k in (1, 5, 10, 50)},
                     "mAP@10": float(np.mean(aps)), "median_rank": float(np.quantile(best, 0.5, method="lower")),
                     "mean_rank": float(best.mean())}
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_reference_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n_audio = 30
    cap_ids = [f"a{i}" for i in range(n_audio) for _ in range(rng.integers(1, 6))]
    sim = rng.integers(0, 4, size=(n_audio, len(cap_ids))).astype(np.float32)  # coarse values: ties everywhere
    got = retrieval_metrics(sim, [f"a{i}" for i in range(n_audio)], cap_ids)
    ref = _reference(sim, [f"a{i}" for i in range(n_audio)], cap_ids)
    for direction in ("t2a", "a2t"):
        assert got[direction] == pytest.approx(ref[direction])


def test_independent_of_row_and_column_order():
    rng = np.random.default_rng(3)
    ids = [f"a{i}" for i in range(20)]
    caps = [f"a{i % 20}" for i in range(60)]
    sim = rng.integers(0, 3, size=(20, 60)).astype(np.float64)
    pa, pc = rng.permutation(20), rng.permutation(60)
    shuffled = retrieval_metrics(sim[pa][:, pc], [ids[i] for i in pa], [caps[i] for i in pc])
    original = retrieval_metrics(sim, ids, caps)
    for direction in ("t2a", "a2t"):  # equal up to the order of floating-point sums
        assert shuffled[direction] == pytest.approx(original[direction], rel=1e-12)


def test_bad_inputs_are_rejected_clearly():
    with pytest.raises(ValueError, match="shape"):
        retrieval_metrics(torch.zeros(3, 2), ["a", "b"], ["a", "b", "b"])
    with pytest.raises(ValueError, match="not in audio_ids"):
        retrieval_metrics(torch.zeros(2, 2), ["a", "b"], ["a", "z"])
    with pytest.raises(ValueError, match="no caption"):
        retrieval_metrics(torch.zeros(2, 2), ["a", "b"], ["a", "a"])
    with pytest.raises(ValueError, match="unique"):
        retrieval_metrics(torch.zeros(2, 2), ["a", "a"], ["a", "a"])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), ["a", "b"], ["a", "b"])


def test_selection_score_is_mean_of_both_directions_and_manifests():
    r1 = {"t2a": {"mAP@10": 0.2}, "a2t": {"mAP@10": 0.4}}
    r2 = {"t2a": {"mAP@10": 0.6}, "a2t": {"mAP@10": 0.0}}
    assert selection_score({"x": r1, "y": r2}) == pytest.approx((0.3 + 0.3) / 2)
    with pytest.raises(ValueError):
        selection_score({})


def test_chance_levels_equal_the_mean_of_random_rankings():
    """The exact chance levels against Monte Carlo: metrics of random similarity matrices averaged over many
    draws, on a set whose audios have 1 to 5 captions (a2t's relevant count varies by query)."""
    from training.metrics import chance_levels

    gen = torch.Generator().manual_seed(0)
    counts = [1, 5, 2, 3, 1, 4, 1, 2, 5, 1, 3, 2, 1, 1, 2, 4, 1, 3, 2, 1]
    ids = [f"a{i}" for i in range(len(counts))]
    caps = [a for a, c in zip(ids, counts) for _ in range(c)]
    expected = chance_levels(counts)
    trials = [retrieval_metrics(torch.rand(len(ids), len(caps), generator=gen), ids, caps) for _ in range(600)]
    assert trials[0]["chance"] == expected, "retrieval_metrics carries the chance levels of its set"
    for d in ("t2a", "a2t"):
        for k in ("R@1", "R@5", "R@10", "R@50", "mAP@10", "mean_rank"):
            measured = float(np.mean([t[d][k] for t in trials]))
            scale = expected[d][k] if k == "mean_rank" else 1.0
            assert abs(measured - expected[d][k]) < 0.01 * scale + 0.004, (d, k, measured, expected[d][k])
        median = float(np.mean([t[d]["median_rank"] for t in trials]))
        assert abs(median - expected[d]["median_rank"]) <= 2, (d, median, expected[d]["median_rank"])
    # by hand: 4 audios of 1 caption: t2a R@1 = 1/4, mAP@10 = (1 + 1/2 + 1/3 + 1/4) / 4, mean rank 2.5
    c = chance_levels([1, 1, 1, 1])
    assert c["t2a"]["R@1"] == 0.25 and c["t2a"]["R@10"] == 1.0 and c["t2a"]["mean_rank"] == 2.5
    assert abs(c["t2a"]["mAP@10"] - (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4) < 1e-12 and c["a2t"] == c["t2a"]
    # one audio with all 3 captions: every ranking finds them, AP = 1
    assert chance_levels([3])["a2t"]["R@1"] == 1.0 and abs(chance_levels([3])["a2t"]["mAP@10"] - 1) < 1e-12
    with pytest.raises(ValueError):
        chance_levels([1, 0])
