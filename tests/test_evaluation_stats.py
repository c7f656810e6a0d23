"""evaluate() rows and curve points, bootstrap intervals, the paired test, pair helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fiqa_bench.evaluation import (
    EvaluationError,
    bootstrap_auc,
    cosine_similarity_pairs,
    edc_fixed,
    erc_recomputed,
    evaluate,
    pair_quality,
    paired_bootstrap,
    resamples,
)

ROW_KEYS = {
    "method",
    "protocol",
    "fmr",
    "auc",
    "ci_low",
    "ci_high",
    "n_pairs",
    "n_genuine",
    "n_impostor",
    "fmr_resolvable",
    "achieved_fmr",
    "threshold",
    "fnmr_at_0",
    "reject_max",
    "discard_limit",
    "note",
}


@pytest.fixture(scope="module")
def data():
    """1,200 pairs in 3 folds; 'good' follows pair difficulty, 'noise' does not."""
    rng = np.random.default_rng(11)
    n = 1200
    gen = np.zeros(n, dtype=bool)
    gen[::2] = True
    z = rng.standard_normal(n)
    sim = np.where(gen, 0.6 + 0.15 * z, 0.05 + 0.1 * z)
    easy = np.where(gen, z, -z)
    good = easy + 0.3 * rng.standard_normal(n)
    noise = rng.standard_normal(n)
    folds = np.arange(n) % 3
    return sim, gen, {"good": good, "noise": noise}, folds


def test_evaluate_rows_match_single_curves(data):
    sim, gen, quals, _ = data
    rows, points = evaluate(sim, gen, quals, [1e-2, 1e-3], protocols="erc_strict,edc")
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert math.isnan(r["ci_low"]) and math.isnan(r["ci_high"])
        assert (r["n_pairs"], r["n_genuine"], r["n_impostor"]) == (1200, 600, 600)
        if r["protocol"] == "erc_strict":
            c = erc_recomputed(sim, gen, quals[r["method"]], r["fmr"])
            assert r["reject_max"] == 0.95 and math.isnan(r["discard_limit"])
        else:
            c = edc_fixed(sim, gen, quals[r["method"]], r["fmr"])
            assert r["discard_limit"] == 0.2 and math.isnan(r["reject_max"])
        assert (r["auc"], r["threshold"], r["achieved_fmr"], r["fnmr_at_0"]) == (
            c.auc,
            c.threshold,
            c.achieved_fmr,
            c.fnmr[0],
        )
        assert r["fmr_resolvable"] is c.fmr_resolvable
    erc_pts = [
        p for p in points if p["protocol"] == "erc_strict" and p["method"] == "good" and p["fmr"] == 1e-2
    ]
    assert [p["fraction"] for p in erc_pts] == pytest.approx(np.arange(20) * 0.05)
    edc_pts = [p for p in points if p["protocol"] == "edc" and p["method"] == "good" and p["fmr"] == 1e-2]
    c = edc_fixed(sim, gen, quals["good"], 1e-2)
    # 600 genuine pairs -> 601 steps, more than 501: the step function is sampled on a 501-point grid
    grid = np.array([p["fraction"] for p in edc_pts])
    np.testing.assert_array_equal(grid, np.linspace(0, 1, 501))
    assert [p["fnmr"] for p in edc_pts] == c.fnmr[
        np.searchsorted(c.fractions, grid, side="right") - 1
    ].tolist()
    # fewer steps: the exact steps
    _, few = evaluate(sim[:200], gen[:200], {"good": quals["good"][:200]}, [1e-2], protocols="erc_strict,edc")
    c200 = edc_fixed(sim[:200], gen[:200], quals["good"][:200], 1e-2)
    assert [(p["fraction"], p["fnmr"]) for p in few if p["protocol"] == "edc"] == list(
        zip(c200.fractions, c200.fnmr, strict=True)
    )
    # The method that follows difficulty beats noise (lower area) in both protocols.
    auc = {(r["method"], r["protocol"]): r["auc"] for r in rows if r["fmr"] == 1e-2}
    assert (
        auc[("good", "erc_strict")] < auc[("noise", "erc_strict")]
        and auc[("good", "edc")] < auc[("noise", "edc")]
    )


def test_edc_points_on_a_grid_when_there_are_many_steps():
    rng = np.random.default_rng(1)
    n = 4000
    gen = rng.random(n) < 0.5
    sim = rng.normal(size=n) + gen
    q = rng.normal(size=n)
    _, points = evaluate(sim, gen, {"q": q}, [0.1])
    edc = [p for p in points if p["protocol"] == "edc"]
    assert len(edc) == 501 and edc[0]["fraction"] == 0.0 and edc[-1]["fraction"] == 1.0
    c = edc_fixed(sim, gen, q, 0.1)
    k = np.searchsorted(c.fractions, 0.3, side="right") - 1  # the step in force at x = 0.3
    assert next(p["fnmr"] for p in edc if p["fraction"] == pytest.approx(0.3)) == c.fnmr[k]


def test_bootstrap_is_seeded_and_contains_the_point_estimate(data):
    sim, gen, quals, folds = data
    q = quals["good"]
    lo, hi, aucs = bootstrap_auc(sim, gen, q, 1e-2, "erc_strict", folds=folds, n=60, seed=3)
    lo2, hi2, aucs2 = bootstrap_auc(sim, gen, q, 1e-2, "erc_strict", folds=folds, n=60, seed=3)
    np.testing.assert_array_equal(aucs, aucs2)
    assert (lo, hi) == (lo2, hi2)
    _, _, aucs3 = bootstrap_auc(sim, gen, q, 1e-2, "erc_strict", folds=folds, n=60, seed=4)
    assert not np.array_equal(aucs, aucs3)
    point = erc_recomputed(sim, gen, q, 1e-2).auc
    assert len(aucs) == 60 and lo <= point <= hi and lo < hi
    lo_e, hi_e, _ = bootstrap_auc(sim, gen, q, 1e-2, "edc", folds=folds, n=60, seed=3)
    assert lo_e <= edc_fixed(sim, gen, q, 1e-2).auc <= hi_e


def test_evaluate_intervals_equal_bootstrap_auc_and_bands_bracket_curves(data):
    sim, gen, quals, folds = data
    rows, points = evaluate(
        sim, gen, quals, [1e-2], folds=folds, bootstrap=40, seed=9, protocols="erc,erc_strict,edc"
    )
    for r in rows:
        lo, hi, _ = bootstrap_auc(
            sim, gen, quals[r["method"]], 1e-2, r["protocol"], folds=folds, n=40, seed=9
        )
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
        assert r["n_bootstrap"] == 40
    for p in points:
        assert {"fnmr_lo", "fnmr_hi"} <= set(p)
        assert p["fnmr_lo"] <= p["fnmr_hi"]


def test_curve_points_table_equals_the_points_one_by_one(data):
    sim, gen, quals, folds = data
    _, points = evaluate(
        sim, gen, quals, [1e-2, 1e-3], folds=folds, bootstrap=10, seed=2, protocols="erc_strict,edc"
    )
    frame = points.assign(dataset="lfw", fr_model="sface").to_frame()
    assert list(frame.columns) == [
        "method",
        "protocol",
        "kind",
        "fmr",
        "starting_error",
        "fraction",
        "fnmr",
        "fnmr_lo",
        "fnmr_hi",
        "dataset",
        "fr_model",
    ]
    one_by_one = list(points)
    assert len(frame) == len(points) == len(one_by_one)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(one_by_one))
    # blocks come as (method, protocol, target): the first block is the first method's ERC at 1e-2
    assert (
        one_by_one[0]["method"] == "good"
        and one_by_one[0]["protocol"] == "erc_strict"
        and one_by_one[0]["fmr"] == 1e-2
    )


def test_resamples_stay_inside_folds_and_labels(data):
    _, gen, _, folds = data
    for idx in resamples(gen, folds, 5, seed=0):
        assert len(idx) == len(gen)
        for f in range(3):
            for g in (True, False):
                cell = (folds == f) & (gen == g)
                assert np.count_nonzero(cell[idx]) == np.count_nonzero(cell)


def test_paired_bootstrap_identical_and_clearly_better(data):
    sim, gen, quals, folds = data
    same = paired_bootstrap(
        sim, gen, quals["good"], quals["good"].copy(), 1e-2, "erc_strict", folds=folds, n=50, seed=1
    )
    assert same["diff"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    better = paired_bootstrap(
        sim, gen, quals["good"], quals["noise"], 1e-2, "erc_strict", folds=folds, n=50, seed=1
    )
    assert better["diff"] < 0 and better["ci_high"] < 0
    assert better["p_value"] <= 2 / 51 + 1e-12  # better in every resample: 2 (0 + 1) / (50 + 1)
    assert better["auc_a"] == erc_recomputed(sim, gen, quals["good"], 1e-2).auc and better["n"] == 50
    edc = paired_bootstrap(sim, gen, quals["good"], quals["noise"], 1e-2, "EDC", n=50, seed=1)
    assert edc["p_value"] < 0.05


def test_bootstrap_rejects_bad_protocol(data):
    sim, gen, quals, _ = data
    with pytest.raises(EvaluationError, match="protocol"):
        bootstrap_auc(sim, gen, quals["good"], 1e-2, "ROC", n=2)


def test_pair_quality_is_the_minimum():
    q = np.array([0.5, 0.1, 0.9])
    np.testing.assert_array_equal(pair_quality(q, np.array([0, 1, 2]), np.array([2, 2, 0])), [0.5, 0.1, 0.5])


def test_cosine_similarity_pairs_chunked():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=(30, 1)).astype(np.float32)
    a, b = rng.integers(0, 30, 100), rng.integers(0, 30, 100)
    unit = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    expected = (unit[a] * unit[b]).sum(axis=1)
    np.testing.assert_allclose(cosine_similarity_pairs(emb, a, b), expected, atol=1e-6)
    np.testing.assert_array_equal(
        cosine_similarity_pairs(emb, a, b, chunk=7), cosine_similarity_pairs(emb, a, b)
    )
    bad = emb.copy()
    bad[3] = 0
    with pytest.raises(EvaluationError, match="zero or non-finite norm"):
        cosine_similarity_pairs(bad, a, b)
    with pytest.raises(EvaluationError, match="out of range"):
        cosine_similarity_pairs(emb, np.array([0]), np.array([30]))
