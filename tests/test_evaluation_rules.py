"""Each registered protocol against a straightforward re-implementation of its program's rule
(written here from ../shared/REFERENCE.md section 5) and hand-computed cases; the tie rule; row order."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.evaluation import (
    EvaluationError,
    evaluate,
    get_protocol,
    insightface_accuracy,
    parse_protocols,
    protocol_cards,
    protocol_names,
    scale_qualities,
)
from fiqa_bench.evaluation.verification import INSIGHTFACE_THRESHOLDS, grid_kfold_accuracy

REPO = Path(__file__).resolve().parents[1]


def _load_plain():
    """benchmarks/erc_plain.py: the ERC rules over every pair at every fraction (the oracle of erc_fast)."""
    spec = importlib.util.spec_from_file_location("erc_plain", REPO / "benchmarks" / "erc_plain.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["erc_plain"] = mod
    spec.loader.exec_module(mod)
    return mod


plain = _load_plain()

# ------------------------------------------------------------------ straightforward reference programs

RATES = np.arange(0, 0.98, 0.05)


def crfiqa_reference(sim, gen, q, fmr):
    """CR-FIQA ERC/erc.py getFNMRFixedTH + ERC/roc.py, restated: angular distances, thresholds = the
    distinct negated distances, FM = impostors with -d >= t, first argmin of |FMR - target|, FNMR = 1 -
    share of genuine distances strictly below the threshold; AUC = trapezoid over (100 r) / 100."""
    dist = np.arccos(np.clip(sim, -1.0, 1.0)) / math.pi
    order = np.argsort(q)
    n = len(sim)
    fnmrs = []
    for r in RATES:
        keep = order[int(r * n) :]
        pos, neg = dist[keep][gen[keep]], dist[keep][~gen[keep]]
        s_all = np.concatenate((-pos, -neg))
        thresholds = np.unique(s_all)
        fm = np.array([np.count_nonzero(-neg >= t) for t in thresholds], dtype=np.float64)
        fmr_c = fm / len(neg)
        th = -thresholds[int(np.argmin(np.abs(fmr_c - fmr)))]
        fnmrs.append(1 - np.count_nonzero(pos < th) / len(pos))
    x = (100 * RATES) / 100
    return np.array(fnmrs), float(np.trapezoid(fnmrs, x))


def magface_reference(sim, gen, q, fmr):
    """MagFace eval_quality.py, restated: impostor distances ascending, k = n - 1 divided by 10 with
    truncation per decade, threshold = k-th distance, genuine accepted iff distance strictly below."""
    dist = np.arccos(np.clip(sim, -1.0, 1.0)) / math.pi
    decades = round(-math.log10(fmr))
    order = np.argsort(q)
    n = len(sim)
    fnmrs = []
    for r in RATES:
        keep = order[int(r * n) :]
        pos, neg = dist[keep][gen[keep]], np.sort(dist[keep][~gen[keep]])
        k = len(neg) - 1
        for _ in range(decades):
            k = int(k / 10)
        fnmrs.append(1 - np.count_nonzero(pos < neg[k]) / len(pos))
    x = (100 * RATES) / 100
    return np.array(fnmrs), float(np.trapezoid(fnmrs, x))


def tie_free(seed, n=3000, p_gen=0.3):
    rng = np.random.default_rng(seed)
    gen = rng.random(n) < p_gen
    sim = np.where(gen, rng.normal(0.55, 0.15, n), rng.normal(0.05, 0.1, n)).clip(-0.99, 0.99)
    q = np.where(gen, sim, -sim) + rng.normal(0, 0.3, n)  # informative, continuous: no ties
    return sim, gen, q


def curve(rows, points, protocol, fmr, method="q"):
    row = next(r for r in rows if r["protocol"] == protocol and r["fmr"] == fmr and r["method"] == method)
    blk = next(b for b in points.blocks if b.protocol == protocol and b.fmr == fmr and b.method == method)
    return row, blk.fnmr


# ------------------------------------------------------------------ the registry


def test_registry_cards_and_names():
    names = protocol_names()
    assert {
        "erc",
        "erc_strict",
        "erc_magface",
        "edc",
        "edc_fm",
        "verification_exact",
        "verification_insightface",
    } <= set(names)
    for card in protocol_cards():
        assert card.kind in ("erc", "edc", "verification") and card.source and card.rule and card.title
        d = card.to_dict()
        assert d["name"] == card.name and isinstance(d["parameters"], list)
        with pytest.raises(AttributeError):
            card.name = "x"  # frozen
    assert "fdbtrs/CR-FIQA" in get_protocol("erc").card.source
    assert parse_protocols("erc, edc,erc", ("edc",)) == ["erc", "edc"]
    assert parse_protocols(None, ("erc", "edc")) == ["erc", "edc"]
    with pytest.raises(EvaluationError, match="unknown protocol 'erx'.*known: "):
        parse_protocols("erc,erx", ())


# ------------------------------------------------------------------ reference programs, tie-free data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_erc_equals_crfiqa_reference_program(seed):
    sim, gen, q = tie_free(seed)
    fmrs = [1e-1, 1e-2, 1e-3]
    rows, points = evaluate(sim, gen, {"q": q}, fmrs, protocols="erc")
    for f in fmrs:
        ref_fnmr, ref_auc = crfiqa_reference(sim, gen, q, f)
        row, fnmr = curve(rows, points, "erc", f)
        np.testing.assert_allclose(fnmr, ref_fnmr, rtol=0, atol=1e-12)
        assert abs(row["auc"] - ref_auc) <= 1e-12
        assert row["split_tie_share"] == 0.0


@pytest.mark.parametrize("seed", [3, 4])
def test_erc_magface_equals_magface_reference_program(seed):
    sim, gen, q = tie_free(seed)
    fmrs = [1e-1, 1e-2, 1e-3]
    rows, points = evaluate(sim, gen, {"q": q}, fmrs, protocols="erc_magface")
    for f in fmrs:
        ref_fnmr, ref_auc = magface_reference(sim, gen, q, f)
        row, fnmr = curve(rows, points, "erc_magface", f)
        np.testing.assert_allclose(fnmr, ref_fnmr, rtol=0, atol=1e-12)
        assert abs(row["auc"] - ref_auc) <= 1e-12


def test_erc_magface_takes_powers_of_ten_only():
    sim, gen, q = tie_free(0, n=200)
    with pytest.raises(EvaluationError, match="powers of ten|1e-1, 1e-2"):
        evaluate(sim, gen, {"q": q}, [5e-3], protocols="erc_magface")


def test_erc_strict_weighted_engine_equals_fast_engine_without_split_ties():
    """erc_strict runs on the fast engine unless a cut splits a tie block; the weighted engine with the
    strict rule gives the same numbers where nothing is split (tied similarity scores included)."""
    from fiqa_bench.evaluation._core import Scores
    from fiqa_bench.evaluation.erc_rules import strict_schedule

    erc_weighted, rule_strict = plain.erc_weighted, plain.rule_strict

    rng = np.random.default_rng(5)
    n = 4000
    gen = rng.random(n) < 0.4
    sim = np.where(
        gen, rng.normal(0.5, 0.2, n), np.round(rng.normal(0.05, 0.1, n), 2)
    )  # tied impostor scores
    q = rng.normal(size=n)
    fmrs = np.array([1e-3, 1e-2, 0.1, 0.37])
    rows, points = evaluate(sim, gen, {"q": q}, fmrs, protocols="erc_strict")
    res = erc_weighted(Scores.build(sim, gen), q, fmrs, strict_schedule(), rule_strict)
    for t, f in enumerate(fmrs):
        row, fnmr = curve(rows, points, "erc_strict", f)
        np.testing.assert_array_equal(fnmr, res.fnmr[t])
        assert row["auc"] == res.auc[t] and row["threshold"] == res.threshold0[t]


# ------------------------------------------------------------------ hand-computed cases

# 2 genuine, 4 impostor pairs; qualities all distinct and uninformative about the first cut
SIM_H = np.array([0.9, 0.3, 0.5, 0.2, 0.1, 0.05])
GEN_H = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
Q_H = np.arange(6, dtype=np.float64) + 10


def test_genuine_pair_exactly_at_the_chosen_threshold():
    # FMR 0.25. erc candidates (all distinct scores) with FMR = impostors >= t over 4:
    #   0.9:0  0.5:.25  0.3:.25  0.2:.5  0.1:.75  0.05:1 -> 0.5 and 0.3 are exactly on target; the lowest
    #   threshold wins: t = 0.3, a GENUINE score; genuine <= t = {0.3} -> FNMR 1/2 at r = 0.
    # erc_strict candidates (impostor scores, accept > v): v=0.5 -> 0, v=0.2 -> 1/4: v = 0.2; genuine
    #   <= 0.2: none -> FNMR 0.
    fr = np.array([0.0, 0.5])
    rows, _ = evaluate(SIM_H, GEN_H, {"q": Q_H}, [0.25], protocols="erc,erc_strict", fractions=fr)
    r = {x["protocol"]: x for x in rows}
    assert r["erc"]["threshold"] == 0.3 and r["erc"]["fnmr_at_0"] == 0.5 and r["erc"]["achieved_fmr"] == 0.25
    assert r["erc_strict"]["threshold"] == 0.2 and r["erc_strict"]["fnmr_at_0"] == 0.0
    assert r["erc_strict"]["achieved_fmr"] == 0.25


def test_fmr_distance_tie():
    # Target 0.375 lies exactly between the achievable FMRs 0.25 and 0.5 (both 0.125 away).
    # erc: lowest threshold among the equally near -> the FMR-0.5 plateau {0.2}: t = 0.2, FMR 0.5.
    # erc_strict: the lower FMR -> accept 1 impostor (v = 0.2, FMR 0.25).
    fr = np.array([0.0, 0.5])
    rows, _ = evaluate(SIM_H, GEN_H, {"q": Q_H}, [0.375], protocols="erc,erc_strict", fractions=fr)
    r = {x["protocol"]: x for x in rows}
    assert (r["erc"]["threshold"], r["erc"]["achieved_fmr"]) == (0.2, 0.5)
    assert (r["erc_strict"]["threshold"], r["erc_strict"]["achieved_fmr"]) == (0.2, 0.25)
    assert "exact FMR distance tie" in r["erc"]["note"]


@pytest.mark.parametrize(
    ("n_imp", "fmr", "k"),
    [
        (3000, 1e-3, 2),
        (3000, 1e-2, 29),
        (3000, 1e-1, 299),
        (2981, 1e-3, 2),
        (2981, 1e-2, 29),
        (2981, 1e-1, 298),
    ],
)
def test_magface_index_arithmetic(n_imp, fmr, k):
    # int((n-1)/10) per decade: 2999 -> 299 -> 29 -> 2 and 2980 -> 298 -> 29 -> 2.
    imp = np.linspace(0.5, -0.5, n_imp)  # distinct, most similar first
    gen_s = np.array([0.9, imp[k], imp[k] + 1e-9, 0.6])
    sim = np.concatenate((gen_s, imp))
    gen = np.concatenate((np.ones(4, dtype=bool), np.zeros(n_imp, dtype=bool)))
    q = np.arange(len(sim), dtype=np.float64)
    rows, _ = evaluate(sim, gen, {"q": q}, [fmr], protocols="erc_magface,erc", fractions=np.array([0.0, 0.5]))
    mag = next(r for r in rows if r["protocol"] == "erc_magface")
    assert mag["threshold"] == imp[k]  # the k-th most similar impostor (0-based)
    assert mag["achieved_fmr"] == k / n_imp  # impostors strictly more similar
    assert mag["fnmr_at_0"] == 0.25  # the genuine score equal to the threshold is not accepted
    if (n_imp, fmr) == (3000, 1e-3):  # MagFace FMR 2/3000; the nearest-FMR rule of erc gives 3/3000
        erc = next(r for r in rows if r["protocol"] == "erc")
        assert erc["achieved_fmr"] == 3 / 3000


def test_schlett_starting_error_is_a_linear_quantile_on_tied_scores():
    # genuine scores 0.1 0.2 0.2 0.2 0.5; impostors far below
    sim = np.array([0.1, 0.2, 0.2, 0.2, 0.5, -0.5, -0.6, -0.7, -0.8])
    gen = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    q = np.array([1.0, 2, 3, 4, 5, 1, 2, 3, 4])
    # e = 0.6: np.quantile position 0.6 * 4 = 2.4 between 0.2 and 0.2 -> t = 0.2; errors: score < 0.2 -> 1/5
    # (the earlier nearest-achievable rule gave 4/5: counts 1 and 4 around 3, distance tie to... 4)
    # e = 0.8: position 3.2 -> t = 0.2 + 0.2 * 0.3 = 0.26 -> 4/5
    rows, _ = evaluate(sim, gen, {"q": q}, [1e-2], protocols="edc", starting_error=[0.6, 0.8])
    by_e = {r["starting_error"]: r for r in rows}
    assert by_e[0.6]["threshold"] == 0.2 and by_e[0.6]["fnmr_at_0"] == 0.2
    assert by_e[0.8]["threshold"] == pytest.approx(0.26) and by_e[0.8]["fnmr_at_0"] == 0.8
    assert math.isnan(by_e[0.6]["fmr"]) and "starting error 0.6" in by_e[0.6]["note"]
    # discarding the lowest-quality genuine pair (0.1, the only error at e=0.6) leaves 0 of 4:
    # stepwise pAUC to 0.2 = 0.2 * 0.2 = 0.04 (one step [0, 0.2) at FNMR 0.2)
    assert by_e[0.6]["auc"] == pytest.approx(0.2 * 0.2)
    # pauc_normalised = pAUC / (e0 * limit) = 1 when the curve never drops before the limit
    assert by_e[0.6]["pauc_normalised"] == pytest.approx(1.0)


def test_fm_edc_from_starting_error():
    # impostor scores -0.5 -0.6 -0.7 -0.8 (qualities 1..4); e = 0.5: t = quantile(imp, 0.5) = -0.65;
    # false matches: score >= t -> {-0.5, -0.6} -> FMR 0.5 at no discard; discarding the lowest-quality
    # impostor (-0.5) leaves 1 of 3 -> 1/3, then 0 of 2 ...
    sim = np.array([0.1, 0.2, 0.3, -0.5, -0.6, -0.7, -0.8])
    gen = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    q = np.array([5.0, 6, 7, 1, 2, 3, 4])
    rows, points = evaluate(
        sim, gen, {"q": q}, [1e-2], protocols="edc_fm", starting_error=0.5, discard_limits=[0.5]
    )
    (r,) = rows
    assert r["threshold"] == pytest.approx(-0.65) and r["error_at_0"] == 0.5 and math.isnan(r["fnmr_at_0"])
    blk = points.blocks[0]
    np.testing.assert_allclose(blk.fraction, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(blk.fnmr, [0.5, 1 / 3, 0, 0, 0])
    assert r["auc"] == pytest.approx(0.25 * 0.5 + 0.25 / 3)


def test_several_discard_limits_and_pauc_variants():
    sim, gen, q = tie_free(7, n=1000)
    rows, points = evaluate(sim, gen, {"q": q}, [1e-2], protocols="edc", discard_limits=[0.2, 0.3])
    assert [r["discard_limit"] for r in rows] == [0.2, 0.3]
    assert len(points.blocks) == 1  # one curve, two areas
    x, e = points.blocks[0].fraction, points.blocks[0].fnmr
    for r in rows:
        lim = r["discard_limit"]
        k = int(np.searchsorted(x, lim, side="left"))
        manual = float(np.sum(e[:k] * (np.minimum(x[1 : k + 1], lim) - x[:k])))
        assert r["auc"] == pytest.approx(manual, rel=1e-12)
        e0 = e[0]
        m = min(e0, lim)
        assert r["pauc_minus_best"] == pytest.approx(manual - (e0 * m - m * m / 2), rel=1e-12)
        assert r["pauc_normalised"] == pytest.approx(manual / (e0 * lim), rel=1e-12)


def test_insightface_grid_and_kfold_boundaries_with_23_pairs():
    # KFold(10) on 23 pairs: folds of 3, 3, 3, 2, 2, 2, 2, 2, 2, 2. Genuine distance 1.0, impostors 3.0,
    # except pair 2: an impostor at distance 0.5 (in fold 0 under KFold; it would be in fold 1 if the
    # first folds were the short ones). On the training folds the first best grid threshold is 1.01
    # (the first grid value above 1.0); it misclassifies pair 2 only: fold 0 scores 2/3, the others 1.
    n = 23
    gen = np.arange(n) % 2 == 0
    d = np.where(gen, 1.0, 3.0)
    gen[2], d[2] = False, 0.5
    mean, std, accs, thrs = grid_kfold_accuracy(d, gen, INSIGHTFACE_THRESHOLDS)
    np.testing.assert_allclose(accs, [2 / 3] + [1.0] * 9)
    assert mean == pytest.approx((2 / 3 + 9) / 10) and std == pytest.approx(np.std(accs))
    assert np.all(thrs == INSIGHTFACE_THRESHOLDS[101]) and INSIGHTFACE_THRESHOLDS[101] == pytest.approx(1.01)
    # From cosine similarity: distance 2 - 2 cos; the grid is what makes it differ from the exact version
    sim = 1 - d / 2
    m2, _, _, _ = insightface_accuracy(sim, gen)
    assert m2 == pytest.approx(mean)
    # from embeddings: insightface's own distance on normalised rows
    e1 = np.tile([1.0, 0.0], (n, 1))
    ang = np.arccos(sim)
    e2 = np.stack([np.cos(ang), np.sin(ang)], axis=1) * 3.0  # scale is normalised away
    m3, _, _, _ = insightface_accuracy(None, gen, embeddings=(e1, e2))
    assert m3 == pytest.approx(mean)


def test_verification_rows_are_labelled():
    sim, gen, q = tie_free(8, n=600)
    rows, _ = evaluate(
        sim, gen, {"q": q}, [1e-2], protocols="erc,verification_exact,verification_insightface"
    )
    ver = [r for r in rows if r["kind"] == "verification"]
    assert [r["protocol"] for r in ver] == ["verification_exact", "verification_insightface"]
    assert all(
        r["method"] == "(all pairs)" and 0.5 < r["accuracy"] <= 1 and math.isnan(r["auc"]) for r in ver
    )


# ------------------------------------------------------------------ ties and row order


def test_constant_quality_gives_a_flat_erc():
    sim, gen, _ = tie_free(9, n=2000)
    q = np.zeros(len(sim))
    # (erc_magface is not flat by construction: its index floor((n - 1) / 10^m) is not proportional to n)
    rows, points = evaluate(sim, gen, {"q": q}, [1e-2], protocols="erc,erc_strict")
    for b in points.blocks:
        assert np.all(b.fnmr == b.fnmr[0]), b.protocol
    for r in rows:
        assert r["split_tie_share"] == 1.0 and "split by a reject cut" in r["note"]
        assert r["auc"] == pytest.approx(r["fnmr_at_0"] * 0.95)


def test_split_tie_block_is_weighted_by_the_share_kept():
    # 4 pairs of equal quality, cut k = 2 drops half the block: each of the 4 counts with weight 1/2.
    # genuine 0.9, 0.4 (q = 1), impostors 0.5, 0.1 (q = 1), plus a high-quality genuine 0.8 and impostor 0.0;
    # N = 6, r = 1/3 -> int(2.0) = 2 cut inside the block [0, 4): weights 1/2 there.
    sim = np.array([0.9, 0.4, 0.5, 0.1, 0.8, 0.0])
    gen = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    q = np.array([1.0, 1, 1, 1, 5, 5])
    rows, points = evaluate(sim, gen, {"q": q}, [0.2], protocols="erc", fractions=np.array([0.0, 1 / 3]))
    # r = 1/3: impostor weights 0.5 (0.5), 0.5 (0.1), 1 (0.0): total 2; erc candidates (desc) and FMR:
    # 0.9:0 0.8:0 0.5:.25 0.4:.25 0.1:.5 0.0:1 -> target 0.2: nearest .25, lowest threshold 0.4;
    # genuine <= 0.4: 0.4 with weight 0.5 of total genuine weight 0.5 + 0.5 + 1 = 2 -> FNMR 0.25
    np.testing.assert_allclose(points.blocks[0].fnmr[1], 0.25)
    assert rows[0]["split_tie_share"] == pytest.approx(4 / 6)


def _tie_heavy(seed=21, n=3000):
    rng = np.random.default_rng(seed)
    gen = rng.random(n) < 0.35
    sim = np.round(np.where(gen, rng.normal(0.55, 0.15, n), rng.normal(0.05, 0.1, n)), 3)
    q1 = np.round(np.where(gen, sim, -sim) * 3 + rng.normal(0, 1, n))  # integers: heavy ties
    q2 = np.zeros(n)
    return sim, gen, {"int": q1, "const": q2}


def test_results_do_not_depend_on_row_order():
    sim, gen, quals = _tie_heavy()
    protos = "erc,erc_strict,erc_magface,edc,edc_fm"
    ref_rows, ref_pts = evaluate(sim, gen, quals, [1e-2, 1e-3], protocols=protos, discard_limits=[0.2, 0.3])
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.permutation(len(sim))
        rows, pts = evaluate(
            sim[p],
            gen[p],
            {k: v[p] for k, v in quals.items()},
            [1e-2, 1e-3],
            protocols=protos,
            discard_limits=[0.2, 0.3],
        )
        assert len(rows) == len(ref_rows)
        for a, b in zip(rows, ref_rows, strict=True):
            for key in a:
                va, vb = a[key], b[key]
                assert va == vb or (isinstance(va, float) and math.isnan(va) and math.isnan(vb)), (key, a, b)
        for a, b in zip(pts.blocks, ref_pts.blocks, strict=True):
            np.testing.assert_array_equal(a.fnmr, b.fnmr)


def test_quality_scale():
    q = np.array([0.0, 0.25, 0.5, 1.0, 1.0, 0.999])
    np.testing.assert_array_equal(scale_qualities(q, "minmax"), [0, 25, 50, 100, 100, 100])
    np.testing.assert_array_equal(scale_qualities(np.array([5.0, 1, 3, 3]), "rank"), [100, 0, 50, 50])
    np.testing.assert_array_equal(scale_qualities(np.ones(3), "minmax"), [0, 0, 0])
    with pytest.raises(EvaluationError, match="quality scale must be one of"):
        scale_qualities(q, "iso")


def test_edge_cases_are_values_with_notes():
    # no genuine above the top impostor: FNMR 1 at FMR 0, noted
    sim = np.array([0.3, 0.2, 0.5, 0.1])
    gen = np.array([1, 1, 0, 0], dtype=bool)
    q = np.array([1.0, 2, 3, 4])
    rows, _ = evaluate(
        sim,
        gen,
        {"q": q},
        [1e-4],
        protocols="erc,erc_strict,erc_magface",
        fractions=np.array([0.0, 0.5, 0.75]),
    )
    # erc_strict and erc_magface: threshold = the top impostor, every genuine pair rejected -> FNMR 1.
    # erc: no candidate has FMR 0; the nearest plateau is FMR 1/2 (candidates 0.5, 0.3, 0.2) and its
    # lowest threshold 0.2 rejects the genuine 0.2 only -> FNMR 1/2.
    expected = {"erc": (0.5, 0.2), "erc_strict": (1.0, 0.5), "erc_magface": (1.0, 0.5)}
    for r in rows:
        assert (r["fnmr_at_0"], r["threshold"]) == expected[r["protocol"]]
        assert "no genuine pair scores above the top impostor" in r["note"]
        assert "below impostor resolution 1/2" in r["note"]
        # r = 0.5 drops the two genuine pairs (qualities 1, 2): no genuine left -> FNMR 0 there, noted
        assert "no genuine pair left from reject fraction 0.50" in r["note"]


def test_prefix_engine_equals_plain_engine_on_tie_heavy_random_cases():
    """erc_fast (what the protocols run) against benchmarks/erc_plain.py (every pair at every fraction)."""
    from fiqa_bench.evaluation._core import Scores
    from fiqa_bench.evaluation.erc_fast import choose_crfiqa, choose_magface, choose_strict, erc_prefix
    from fiqa_bench.evaluation.erc_rules import crfiqa_schedule, strict_schedule

    erc_weighted, rule_crfiqa, rule_magface, rule_strict = (
        plain.erc_weighted,
        plain.rule_crfiqa,
        plain.rule_magface,
        plain.rule_strict,
    )

    rng = np.random.default_rng(0)
    any_fmr = np.array([0.0, 1e-3, 0.01, 0.1, 0.25, 0.5, 1.0])
    decades = np.array([1.0, 0.1, 0.01, 1e-3])
    for _ in range(60):
        n = int(rng.integers(5, 600))
        sim = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        gen = rng.random(n) < rng.uniform(0.1, 0.9)
        gen[0], gen[1] = True, False
        q = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        sc = Scores.build(sim, gen)
        for rule, choose, fm, sched in (
            (rule_crfiqa, choose_crfiqa, any_fmr, crfiqa_schedule()),
            (rule_strict, choose_strict, any_fmr, strict_schedule()),
            (rule_magface, choose_magface, decades, crfiqa_schedule()),
        ):
            a = erc_weighted(sc, q, fm, sched, rule)
            b = erc_prefix(sc, q, fm, sched, choose)
            np.testing.assert_array_equal(a.fnmr, b.fnmr)
            np.testing.assert_array_equal(a.threshold0, b.threshold0)
            np.testing.assert_array_equal(a.achieved0, b.achieved0)
            np.testing.assert_array_equal(a.distance_ties, b.distance_ties)
            assert a.notes == b.notes


def test_protocols_markdown_lists_every_protocol():
    from fiqa_bench.evaluation import protocols_markdown

    md = protocols_markdown({"erc": "+0.001"})
    for name in protocol_names():
        assert f"| `{name}` |" in md
    assert "+0.001" in md and md.splitlines()[0].endswith("difference from erc_strict |")


def test_bootstrap_bands_for_every_curve_of_every_protocol():
    sim, gen, q = tie_free(12, n=800)
    folds = np.arange(len(sim)) % 4
    rows, points = evaluate(
        sim,
        gen,
        {"q": q, "r": -q},
        [1e-2],
        protocols="erc,erc_magface,edc,edc_fm",
        folds=folds,
        bootstrap=8,
        seed=1,
    )
    for b in points.blocks:
        assert b.fnmr_lo is not None and b.fnmr_lo.shape == b.fraction.shape == b.fnmr_hi.shape
        assert np.all(b.fnmr_lo <= b.fnmr_hi)
    for r in rows:
        assert r["ci_low"] <= r["ci_high"] and r["n_bootstrap"] == 8


def test_xqlfw_accuracy_uses_cosine_distance_on_a_0001_grid():
    from fiqa_bench.evaluation import xqlfw_accuracy

    # 20 pairs: genuine cos 0.5 (distance 0.5), impostors cos 0.4995 (distance 0.5005): the 0.001 grid has no
    # threshold between them (0.500 -> all "different", 0.501 -> all "same"); every fold: best = 50 %.
    # With cos 0.498 for impostors (distance 0.502) the grid value 0.501 separates them: 100 %.
    gen = np.arange(20) % 2 == 0
    mean, _, _, _ = xqlfw_accuracy(np.where(gen, 0.5, 0.4995), gen)
    assert mean == pytest.approx(0.5)
    mean2, _, _, thrs = xqlfw_accuracy(np.where(gen, 0.5, 0.498), gen)
    assert mean2 == 1.0 and np.allclose(thrs, 0.501)


@pytest.mark.parametrize("seed", [30, 31])
def test_erc_and_magface_equal_the_programs_on_tied_similarity_scores(seed):
    """Similarity with 2 decimals (the programs' np.unique thresholds and sorted distances meet ties),
    qualities tie-free (no reject cut splits anything)."""
    rng = np.random.default_rng(seed)
    n = 1500
    gen = rng.random(n) < 0.4
    sim = np.round(np.where(gen, rng.normal(0.5, 0.2, n), rng.normal(0.05, 0.1, n)), 2).clip(-0.99, 0.99)
    q = rng.permutation(n).astype(np.float64)
    fmrs = [1e-1, 1e-2, 1e-3]
    rows, _ = evaluate(sim, gen, {"q": q}, fmrs, protocols="erc,erc_magface")
    for f in fmrs:
        auc = {r["protocol"]: r["auc"] for r in rows if r["fmr"] == f}
        assert abs(auc["erc"] - crfiqa_reference(sim, gen, q, f)[1]) <= 1e-12
        assert abs(auc["erc_magface"] - magface_reference(sim, gen, q, f)[1]) <= 1e-12


def test_list_protocols_command(capsys):
    from fiqa_bench.cli import main

    assert main(["list", "protocols"]) == 0
    out = capsys.readouterr().out
    assert "default erc,edc" in out
    for name in protocol_names():
        assert f"  {name} " in out


def test_bootstrap_intervals_do_not_depend_on_row_order():
    sim, gen, quals = _tie_heavy(n=1200)
    folds = np.arange(len(sim)) % 3
    kw = {"protocols": "erc,edc", "bootstrap": 6, "seed": 3}
    ref, ref_pts = evaluate(sim, gen, quals, [1e-2], folds=folds, **kw)
    p = np.random.default_rng(1).permutation(len(sim))
    rows, pts = evaluate(sim[p], gen[p], {k: v[p] for k, v in quals.items()}, [1e-2], folds=folds[p], **kw)
    assert [(r["ci_low"], r["ci_high"]) for r in rows] == [(r["ci_low"], r["ci_high"]) for r in ref]
    for a, b in zip(pts.blocks, ref_pts.blocks, strict=True):
        np.testing.assert_array_equal(a.fnmr_lo, b.fnmr_lo)
        np.testing.assert_array_equal(a.fnmr_hi, b.fnmr_hi)
