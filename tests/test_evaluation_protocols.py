"""ERC (recomputed threshold) and EDC (fixed threshold): hand-computed cases, edge cases, and the
fast engine against the straightforward implementation in benchmarks/bench_evaluation.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.errors import FiqaError
from fiqa_bench.evaluation import (
    DEFAULT_REJECT_FRACTIONS,
    EvaluationError,
    edc_fixed,
    erc_recomputed,
    evaluate,
    reject_counts,
)

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_evaluation", REPO / "benchmarks" / "bench_evaluation.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_evaluation"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()

# Case A: 4 genuine, 4 impostor pairs.
#   pair:     0    1    2    3    4    5    6    7
SIM_A = np.array([0.9, 0.8, 0.7, 0.3, 0.5, 0.2, 0.1, 0.6])
GEN_A = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
Q_A = np.array([5.0, 4, 3, 1, 2, 6, 7, 8])


def test_defaults():
    assert len(DEFAULT_REJECT_FRACTIONS) == 20
    assert DEFAULT_REJECT_FRACTIONS[0] == 0 and DEFAULT_REJECT_FRACTIONS[-1] == 0.95
    # floor(r N) without floating-point slips: 0.15 * 100 = 15.000000000000002, 0.29 * 100 = 28.999999999999996
    assert reject_counts(np.array([0.15, 0.29, 0.95]), 100).tolist() == [15, 29, 95]
    assert reject_counts(DEFAULT_REJECT_FRACTIONS, 1800)[-1] == 1710


def test_erc_hand_computed():
    c = erc_recomputed(SIM_A, GEN_A, Q_A, 0.25, fractions=[0.0, 0.25, 0.5])
    # r=0: impostors 0.6 0.5 0.2 0.1, target 0.25*4 = 1 accepted -> threshold 0.5 (accepts 0.6 only);
    #      genuine <= 0.5: {0.3} -> FNMR 1/4.
    # r=0.25: drop floor(0.25*8)=2 lowest quality: pair 3 (q1, genuine 0.3) and pair 4 (q2, impostor 0.5).
    #      impostors 0.6 0.2 0.1, target 0.75: candidates accept 0 (|0-.75|=.75), 1 (.25), 2 (1.25) -> 1,
    #      threshold 0.2; genuine 0.9 0.8 0.7 all > 0.2 -> FNMR 0.
    # r=0.5: drop 4 (pairs 3, 4, 2, 1): genuine 0.9 left, same impostors -> threshold 0.2 -> FNMR 0.
    np.testing.assert_array_equal(c.fnmr, [0.25, 0.0, 0.0])
    # trapezoid: (0.25 + 0) / 2 * 0.25 + (0 + 0) / 2 * 0.25 = 0.03125
    assert c.auc == pytest.approx(0.03125, abs=1e-15)
    assert c.protocol == "ERC" and c.threshold == 0.5 and c.achieved_fmr == 0.25 and c.fmr_resolvable


def test_erc_tied_impostor_scores_and_distance_tie():
    sim = np.array([0.5, 0.6, 0.4, 0.9, 0.5, 0.5, 0.1])
    gen = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    q = np.arange(7.0)
    c = erc_recomputed(sim, gen, q, 0.5, fractions=[0.0])
    # impostors 0.9, 0.5, 0.5, 0.1; target 0.5*4 = 2 accepted. Achievable: 0 (thr 0.9), 1 (thr 0.5: only
    # 0.9 is strictly above), 3 (thr 0.1); never 2. |1-2| = |3-2| = 1 -> tie -> lower FMR: threshold 0.5.
    assert c.threshold == 0.5 and c.achieved_fmr == 0.25
    # genuine 0.5 (== threshold: not accepted), 0.6, 0.4 -> FNMR 2/3
    assert c.fnmr[0] == 2 / 3


def test_erc_tied_qualities_split_by_cut_are_weighted_not_ordered():
    #          pair:   0    1    2    3    4    5    6    7
    sim = np.array([0.2, 0.9, 0.8, 0.7, 0.4, 0.1, 0.3, 0.0])
    gen = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    q = np.array([1.0, 1, 1, 2, 3, 3, 3, 3])
    c = erc_recomputed(sim, gen, q, 0.25, fractions=[0.0, 0.125, 0.25])
    # r=0: impostors 0.4 0.3 0.1 0.0, 1 accepted -> threshold 0.3; genuine <= 0.3: {0.2} -> 1/4.
    # r=0.125: the cut (1 pair) splits the tie block of pairs 0, 1, 2 (quality 1): each stays with weight
    #          2/3. Impostors all kept (4): threshold 0.3 again; false non-match: pair 0 (0.2) with weight
    #          2/3 of genuine weight 3 x 2/3 + 1 = 3 -> 2/9.   r=0.25: weights 1/3 -> (1/3) / 2 = 1/6.
    np.testing.assert_allclose(c.fnmr, [0.25, 2 / 9, 1 / 6], rtol=0, atol=1e-15)
    assert c.auc == pytest.approx(0.125 * (0.25 + 2 / 9) / 2 + 0.125 * (2 / 9 + 1 / 6) / 2, abs=1e-15)
    assert "split by a reject cut" in c.note
    # Same pairs in another order: same curve (it used to depend on which tied pair came first).
    perm = np.array([1, 0, 2, 3, 4, 5, 6, 7])
    c2 = erc_recomputed(sim[perm], gen[perm], q[perm], 0.25, fractions=[0.0, 0.125, 0.25])
    np.testing.assert_array_equal(c2.fnmr, c.fnmr)


def test_fmr_below_impostor_resolution_is_flagged():
    c = erc_recomputed(SIM_A, GEN_A, Q_A, 1e-4)
    # 4 impostors: FMR 1e-4 would need 0.0004 false matches; nearest achievable is 0 (threshold = top impostor 0.6)
    assert not c.fmr_resolvable
    assert c.threshold == 0.6 and c.achieved_fmr == 0.0
    assert "below impostor resolution 1/4" in c.note and "nearest achievable 0" in c.note
    assert c.fnmr[0] == 0.25  # genuine <= 0.6: {0.3}
    e = edc_fixed(SIM_A, GEN_A, Q_A, 1e-4)
    assert not e.fmr_resolvable and "below impostor resolution 1/4" in e.note
    rows, _ = evaluate(SIM_A, GEN_A, {"q": Q_A}, [1e-4, 0.25], protocols="erc_strict,edc")
    flags = {(r["protocol"], r["fmr"]): r["fmr_resolvable"] for r in rows}
    assert flags == {
        ("erc_strict", 1e-4): False,
        ("edc", 1e-4): False,
        ("erc_strict", 0.25): True,
        ("edc", 0.25): True,
    }


def test_resolution_lost_while_rejecting_is_noted():
    c = erc_recomputed(SIM_A, GEN_A, Q_A, 0.25, fractions=[0.0, 0.25])
    # 4 impostors at r=0 (0.25 * 4 = 1), 3 after dropping pair 4 (0.25 * 3 < 1)
    assert c.fmr_resolvable and "unresolved from reject fraction 0.25" in c.note


def test_edc_hand_computed():
    e = edc_fixed(SIM_A, GEN_A, Q_A, 0.25, 0.2)
    # threshold fixed on all 4 impostors: 0.5 (as ERC at r=0). Genuine by quality: q1 0.3 (FNM), q3 0.7, q4 0.8, q5 0.9.
    # x = discarded genuine / 4: (0, 1/4), (0.25, 0), (0.5, 0), (0.75, 0), end (1, 0)
    np.testing.assert_array_equal(e.fractions, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(e.fnmr, [0.25, 0.0, 0.0, 0.0, 0.0])
    assert e.auc == pytest.approx(0.25 * 0.2, abs=1e-15)  # stepwise: 0.05
    assert e.threshold == 0.5 and e.achieved_fmr == 0.25
    assert edc_fixed(SIM_A, GEN_A, Q_A, 0.25, 0.5).auc == pytest.approx(0.25 * 0.25, abs=1e-15)  # 0.0625
    # normalised: minus the ideal curve max(0, 0.25 - x) on [0, 0.2]: 0.25^2/2 - 0.05^2/2 = 0.03 -> 0.02
    n = edc_fixed(SIM_A, GEN_A, Q_A, 0.25, 0.2, normalised=True)
    assert n.normalised and n.auc == pytest.approx(0.05 - 0.03, abs=1e-15)


def test_edc_tied_qualities_discarded_together():
    sim = np.array([0.3, 0.4, 0.9, 0.2, 0.8, 0.6, 0.5, 0.1, 0.0])
    gen = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    q = np.array([1.0, 1, 1, 2, 3, 0, 0, 0, 0])
    e = edc_fixed(sim, gen, q, 0.25, 1.0)
    # threshold: 4 impostors 0.6 0.5 0.1 0.0, 1 accepted -> 0.5. FNM (<= 0.5): 0.3 0.4 0.2 -> e0 = 3/5.
    # q=1 (three pairs) goes at once: x = 3/5, left 0.2 (q2) and 0.8 (q3) -> 1/2; q=2: x = 4/5, left 0.8 -> 0.
    np.testing.assert_array_equal(e.fractions, [0.0, 0.6, 0.8, 1.0])
    np.testing.assert_array_equal(e.fnmr, [0.6, 0.5, 0.0, 0.0])
    assert e.auc == pytest.approx(0.6 * 0.6 + 0.5 * 0.2, abs=1e-15)  # 0.46
    assert edc_fixed(sim, gen, q, 0.25, 0.2).auc == pytest.approx(0.6 * 0.2, abs=1e-15)  # 0.12


def test_edc_starting_error_threshold():
    sim = np.array([0.2, 0.3, 0.4, 0.8, 0.9, 0.6, 0.5, 0.1, 0.0])
    gen = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    e = edc_fixed(sim, gen, np.arange(9.0), 0.01, starting_error=0.4)
    # Schlett: np.quantile of genuine 0.2 0.3 0.4 0.8 0.9 at 0.4: position 1.6 -> 0.3 + 0.6 x 0.1 = 0.36;
    # errors: genuine < 0.36 = {0.2, 0.3} -> FNMR 0.4
    assert e.threshold == pytest.approx(0.36) and e.fnmr[0] == 0.4
    assert e.achieved_fmr == 0.5  # impostors >= 0.36: 0.6, 0.5 of 4
    assert np.isnan(e.fmr) and "starting error" in e.note
    e0 = edc_fixed(sim, gen, np.arange(9.0), 0.01, starting_error=0.0)
    assert e0.fnmr[0] == 0.0 and e0.threshold == 0.2  # quantile 0 = the lowest score; < 0.2: none


@pytest.mark.parametrize("gen", [np.ones(6, dtype=bool), np.zeros(6, dtype=bool)])
def test_all_genuine_or_all_impostor_is_a_clear_error(gen):
    sim = np.linspace(0, 1, 6)
    for call in (
        lambda: erc_recomputed(sim, gen, sim, 1e-3),
        lambda: edc_fixed(sim, gen, sim, 1e-3),
        lambda: evaluate(sim, gen, {"q": sim}, [1e-3]),
    ):
        with pytest.raises(EvaluationError, match="no (genuine|impostor) pairs") as exc:
            call()
        assert isinstance(exc.value, FiqaError)


def test_no_impostor_or_no_genuine_left_counts_as_zero_fnmr_with_a_note():
    sim = np.array([0.9, 0.8, 0.3, 0.1, 0.2, 0.7])
    gen = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    q = np.array([5.0, 6, 7, 1, 2, 3])  # the impostors are the lowest quality
    c = erc_recomputed(sim, gen, q, 1 / 3, fractions=[0.0, 0.5])
    # r=0: impostors 0.7 0.2 0.1, target 1 accepted -> threshold 0.2; genuine 0.9 0.8 0.3 all > 0.2 -> 0
    # r=0.5: the 3 impostors are gone: no FMR can fix a threshold -> FNMR taken as 0 (documented convention)
    np.testing.assert_array_equal(c.fnmr, [0.0, 0.0])
    assert c.auc == 0.0 and "no impostor pair left from reject fraction 0.50" in c.note
    q2 = np.array([1.0, 2, 3, 5, 6, 7])  # now the genuine pairs go first
    c2 = erc_recomputed(sim, gen, q2, 1 / 3, fractions=[0.0, 0.5])
    assert c2.fnmr[1] == 0.0 and "no genuine pair left from reject fraction 0.50" in c2.note
    ref = bench.erc_straightforward(sim, gen, q2, [1 / 3], [0.0, 0.5])
    np.testing.assert_array_equal(c2.fnmr, ref["fnmr"][0])


@pytest.mark.parametrize(
    "bad",
    [
        dict(similarity=np.array([0.1, np.nan, 0.3, 0.4])),
        dict(genuine=np.array([0, 1, 2, 0])),
        dict(pair_quality=np.array([1.0, 2.0])),
        dict(pair_quality=np.array([1.0, np.inf, 2, 3])),
        dict(fractions=[0.0, 0.5, 0.4]),
        dict(fmr=1.5),
    ],
)
def test_bad_inputs_raise(bad):
    kw = dict(
        similarity=np.array([0.1, 0.2, 0.3, 0.4]),
        genuine=np.array([0, 1, 0, 1]),
        pair_quality=np.arange(4.0),
        fmr=0.5,
    )
    kw.update(bad)
    with pytest.raises(EvaluationError):
        erc_recomputed(**kw)


def fast_erc(sim, gen, q, fmr, fractions=DEFAULT_REJECT_FRACTIONS):
    """The fast vectorised engine alone (quality_buckets: tied qualities split by pair index, the
    straightforward oracle's order). erc_strict uses it wherever no cut splits a tie block."""
    from types import SimpleNamespace

    from fiqa_bench.evaluation._core import Scores, quality_buckets
    from fiqa_bench.evaluation.protocols import erc_arrays

    sc = Scores.build(sim, gen)
    fr = np.asarray(fractions, dtype=np.float64)
    arr = erc_arrays(
        sc, quality_buckets(np.asarray(q), reject_counts(fr, sc.n)), fr, np.atleast_1d(np.float64(fmr))
    )
    return SimpleNamespace(fnmr=arr.fnmr[0], auc=arr.auc[0], threshold=arr.threshold0[0])


def _random_case(rng: np.random.Generator, n: int):
    sim = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # 0-2 decimals: many tied scores
    gen = rng.random(n) < rng.uniform(0.2, 0.8)
    gen[0], gen[1] = True, False
    q = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # tied qualities, cut by reject counts
    return sim, gen, q


def test_fast_equals_straightforward_on_random_data_with_ties():
    rng = np.random.default_rng(7)
    fmrs = [0.0, 1e-3, 0.01, 0.1, 0.25, 0.5, 1.0]
    for _ in range(40):
        sim, gen, q = _random_case(rng, int(rng.integers(4, 300)))
        ref = bench.erc_straightforward(sim, gen, q, fmrs)
        for t, f in enumerate(fmrs):
            c = fast_erc(sim, gen, q, f)
            np.testing.assert_array_equal(c.fnmr, ref["fnmr"][t])
            np.testing.assert_array_equal(c.auc, ref["auc"][t])  # NaN == NaN here
            assert c.threshold == ref["threshold0"][t]
            limit = float(rng.choice([0.0, 0.1, 0.2, 1.0]))
            norm = bool(rng.random() < 0.5)
            e = edc_fixed(sim, gen, q, f, limit, normalised=norm)
            for r in (
                bench.edc_straightforward(sim, gen, q, f, limit, norm),
                bench.edc_straightforward_cumsum(sim, gen, q, f, limit, norm),
            ):
                np.testing.assert_array_equal(e.fractions, r["x"])
                np.testing.assert_array_equal(e.fnmr, r["fnmr"])
                assert e.auc == r["auc"] and e.threshold == r["threshold"]


def test_fast_equals_straightforward_when_the_prefix_scan_must_grow():
    # 20k pairs, impostor scores with 2 decimals (big tie blocks); the most similar impostors have the
    # lowest quality, so rejection removes the head of the score order and the scan has to reach past it.
    rng = np.random.default_rng(3)
    n = 20_000
    gen = rng.random(n) < 0.3
    sim = np.where(gen, rng.normal(0.6, 0.15, n), np.round(rng.normal(0.05, 0.1, n), 2))
    q = np.where(gen, rng.normal(size=n), -sim * 10 + rng.normal(0, 0.01, n))
    fmrs = [1e-4, 1e-3, 1e-2, 0.3]
    ref = bench.erc_straightforward(sim, gen, q, fmrs)
    rows, _ = evaluate(sim, gen, {"q": q}, fmrs, protocols="erc_strict,edc")
    for t, f in enumerate(fmrs):
        c = fast_erc(sim, gen, q, f)
        np.testing.assert_array_equal(c.fnmr, ref["fnmr"][t])
        assert c.auc == ref["auc"][t]
        erc_row = next(r for r in rows if r["protocol"] == "erc_strict" and r["fmr"] == f)
        assert erc_row["auc"] == ref["auc"][t]
        edc_row = next(r for r in rows if r["protocol"] == "edc" and r["fmr"] == f)
        assert edc_row["auc"] == bench.edc_straightforward_cumsum(sim, gen, q, f)["auc"]


def test_float32_scores_match_float64_decisions():
    rng = np.random.default_rng(5)
    sim, gen, q = _random_case(rng, 500)
    s32 = sim.astype(np.float32)
    c = fast_erc(s32, gen, q.astype(np.float32), 0.1)
    ref = bench.erc_straightforward(s32, gen, q.astype(np.float32), [0.1])
    np.testing.assert_array_equal(c.fnmr, ref["fnmr"][0])


@pytest.mark.parametrize("seed", [1, 50, 5000])
def test_fast_equals_straightforward_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    for _ in range(5):
        sim, gen, q = _random_case(rng, int(rng.integers(50, 3000)))
        fmrs = [1e-3, 0.02, 0.3, 0.9]
        ref = bench.erc_straightforward(sim, gen, q, fmrs)
        for t, f in enumerate(fmrs):
            np.testing.assert_array_equal(fast_erc(sim, gen, q, f).fnmr, ref["fnmr"][t])


def test_reject_fractions_not_starting_at_zero_equal_straightforward():
    # The first fraction already drops pairs: those never remain (bucket 0) at any fraction.
    rng = np.random.default_rng(21)
    for _ in range(60):
        sim, gen, q = _random_case(rng, int(rng.integers(20, 400)))
        fr = np.round(
            np.sort(rng.choice(np.arange(1, 19) * 0.05, size=int(rng.integers(1, 8)), replace=False)), 2
        )
        fmrs = [0.0, 0.01, 0.1, 0.5, 1.0]
        ref = bench.erc_straightforward(sim, gen, q, fmrs, fr)
        for t, f in enumerate(fmrs):
            np.testing.assert_array_equal(fast_erc(sim, gen, q, f, fr).fnmr, ref["fnmr"][t])


def test_threshold_search_in_row_blocks_equals_one_block(monkeypatch):
    # Large m (FMR 0.5) on many fractions: answered a few fraction rows at a time when memory asks for it.
    from fiqa_bench.evaluation import _core

    rng = np.random.default_rng(4)
    sim, gen, q = _random_case(rng, 3000)
    fr = np.round(np.arange(40) * 0.02, 2)
    fmrs = [1e-3, 0.5, 0.9]
    ref = bench.erc_straightforward(sim, gen, q, fmrs, fr)
    monkeypatch.setattr(
        _core, "ROW_BLOCK_ELEMENTS", 2000
    )  # m ~ FMR x impostors: 1-2 rows per block at 0.5 and 0.9
    for t, f in enumerate(fmrs):
        np.testing.assert_array_equal(fast_erc(sim, gen, q, f, fr).fnmr, ref["fnmr"][t])


def test_erc_strict_equals_straightforward_on_tie_free_qualities():
    # With distinct qualities no cut splits a tie: erc_strict (erc_recomputed) is the straightforward rule.
    rng = np.random.default_rng(17)
    for _ in range(10):
        sim, gen, _ = _random_case(rng, int(rng.integers(50, 2000)))
        q = rng.permutation(len(sim)).astype(np.float64)
        fmrs = [0.0, 1e-3, 0.05, 0.5]
        ref = bench.erc_straightforward(sim, gen, q, fmrs)
        for t, f in enumerate(fmrs):
            c = erc_recomputed(sim, gen, q, f)
            np.testing.assert_array_equal(c.fnmr, ref["fnmr"][t])
            assert c.auc == ref["auc"][t] or (np.isnan(c.auc) and np.isnan(ref["auc"][t]))


def test_quality_buckets_follow_the_stable_order():
    from fiqa_bench.evaluation._core import quality_buckets

    rng = np.random.default_rng(8)
    for _ in range(50):
        n = int(rng.integers(1, 500))
        q = np.round(rng.normal(size=n), int(rng.integers(0, 2)))
        ks = reject_counts(np.round(np.arange(20) * 0.05, 2), n)
        position = np.empty(n, dtype=np.int64)
        position[np.argsort(q, kind="stable")] = np.arange(n)
        expected = (position[:, None] >= ks[None, :]).sum(axis=1)
        np.testing.assert_array_equal(quality_buckets(q, ks), expected)


def test_tie_block_reaching_past_the_running_top_list():
    # 100 impostors: 0.9, twelve at 0.5, 87 at 0.1. Target 0.106 -> 10.6 accepted. Achievable: 0 (thr 0.9),
    # 1 (thr 0.5), 13 (thr 0.1); |13 - 10.6| = 2.4 is nearest -> threshold 0.1, FMR 0.13. The engine keeps
    # the top 13 impostors, whose last tie block ends exactly there, so it must widen its list once.
    imp = np.array([0.9] + [0.5] * 12 + [0.1] * 87)
    gen_scores = np.array([0.1, 0.2, 0.6])
    sim = np.concatenate((gen_scores, imp))
    gen = np.arange(len(sim)) < 3
    c = erc_recomputed(sim, gen, np.arange(len(sim), dtype=float), 0.106, fractions=[0.0, 0.02])
    assert c.threshold == 0.1 and c.achieved_fmr == 0.13
    assert c.fnmr[0] == 1 / 3  # genuine 0.1 <= 0.1
    ref = bench.erc_straightforward(sim, gen, np.arange(len(sim), dtype=float), [0.106], [0.0, 0.02])
    np.testing.assert_array_equal(c.fnmr, ref["fnmr"][0])


def test_fold_accuracy_hand_computed():
    from fiqa_bench.evaluation import fold_accuracy
    from fiqa_bench.evaluation.verification import best_threshold

    # genuine 0.9, 0.8, 0.3; impostor 0.4, 0.2, 0.1: best threshold 0.2 (> 0.2 accepts 0.9, 0.8, 0.3, 0.4): 5/6.
    sim = np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.1])
    gen = np.array([True, True, True, False, False, False])
    assert best_threshold(sim, gen) == 0.2
    # Fold 0 = pairs 0, 3 (0.9 gen, 0.4 imp); on the other folds (0.8 g, 0.3 g, 0.2 i, 0.1 i) the best
    # threshold is 0.2 (4/4 right); on fold 0 it accepts both 0.9 and 0.4 -> 1/2.
    fold = np.array([0, 1, 2, 0, 1, 2])
    mean, _ = fold_accuracy(sim, gen, fold)
    assert best_threshold(sim[fold != 0], gen[fold != 0]) == 0.2
    per_fold = []
    for f in range(3):
        test = fold == f
        t = best_threshold(sim[~test], gen[~test])
        per_fold.append(np.mean((sim[test] > t) == gen[test]))
    assert mean == pytest.approx(np.mean(per_fold))
    assert per_fold[0] == 0.5
