"""The plug-in contract (fiqa_bench.types): declared options, engine arguments apart, fingerprints
from declared state only. Regression tests for the three defects of issue 16:

(a) a README-style method with needs_fr_model="any" served stale cached scores after an FR-model
    option changed (its fingerprint lacked the FR model's);
(b) engine arguments (--weights-dir) leaked into a method's options and cache key, and unknown options
    (--set brightness.typo_option=3) were accepted silently;
(c) distributed runs dropped dataset options (--set demo.folds=2): the shards filled one cache slot,
    rank 0 recomputed everything in another.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fiqa_bench
from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import METHODS, Card


@pytest.fixture
def registered():
    """Two README-style methods (cards built here so that this module imports on any version)."""
    from fiqa_bench.registry import Option
    from fiqa_bench.types import QualityMethod

    class FrNorm(QualityMethod):
        """Written as the README says: no __init__, nothing set by hand; uses self.fr_model."""

        def _raw_batch(self, images: np.ndarray, meta: object) -> np.ndarray:
            return np.linalg.norm(self.fr_model.embed(images), axis=1)

    class Brightness(QualityMethod):
        def _raw_batch(self, images: np.ndarray, meta: object) -> np.ndarray:
            return images.reshape(len(images), -1).mean(axis=1) / (255.0 * self.options["scale"])

    fr_norm = Card(
        name="test_fr_norm",
        kind="method",
        summary="test: norm of the bound FR model's embedding, computed from the images",
        needs_fr_model="any",
    )
    brightness = Card(
        name="test_brightness",
        kind="method",
        summary="test: mean grey level",
        score_direction="lower_better",
        options=(Option("scale", 1.0, "divide the mean by 255 * scale"),),
    )
    METHODS.add(fr_norm, FrNorm)
    METHODS.add(brightness, Brightness)
    yield
    METHODS.unregister("test_fr_norm")
    METHODS.unregister("test_brightness")


def _run(tmp_path: Path, name: str, **kw: object) -> tuple[dict, Path]:
    out = tmp_path / name
    fiqa_bench.run(
        datasets="demo",
        models="sface",
        out=out,
        cache_dir=tmp_path / "cache",
        progress=False,
        report=False,
        **kw,
    )
    return json.loads((out / "run.json").read_text()), out


@pytest.mark.slow
def test_a_any_fr_model_method_recomputes_after_fr_model_option_change(registered, tmp_path: Path) -> None:
    """Defect (a): --set sface.flip_tta=concat must give new pair qualities (sqrt(2): the norm of two
    concatenated unit vectors), not the cached ones of flip_tta=none."""
    _run(tmp_path, "plain", methods="test_fr_norm")
    run, out = _run(tmp_path, "flip", methods="test_fr_norm", options={"sface": {"flip_tta": "concat"}})
    with np.load(out / "pairs" / next(p.name for p in (out / "pairs").iterdir())) as z:
        q = z["q__test_fr_norm"]
    np.testing.assert_allclose(q, np.sqrt(2.0), rtol=1e-5)
    assert run["cache"]["computed"] > 0


def test_a_fingerprint_includes_bound_fr_model(registered) -> None:
    plain = fiqa_bench.get_fr_model("sface")
    flip = fiqa_bench.get_fr_model("sface", flip_tta="concat")
    assert plain.fingerprint() != flip.fingerprint()
    f1 = fiqa_bench.get_method("test_fr_norm", fr_model=plain).fingerprint()
    f2 = fiqa_bench.get_method("test_fr_norm", fr_model=flip).fingerprint()
    assert f1 != f2


def test_b_engine_arguments_are_not_options(registered, tmp_path: Path) -> None:
    """Defect (b): weights_dir/device never reach a method's options or its fingerprint."""
    a = fiqa_bench.get_method("test_brightness")
    b = fiqa_bench.get_method("test_brightness", weights_dir=tmp_path, device="cpu", batch_size=7)
    assert dict(a.options) == dict(b.options) == {"scale": 1.0}
    assert a.fingerprint() == b.fingerprint()
    c = fiqa_bench.get_method("test_brightness", scale=2)
    assert c.options["scale"] == 2.0 and c.fingerprint() != a.fingerprint()


def test_b_unknown_or_bad_option_is_rejected_with_did_you_mean(registered) -> None:
    with pytest.raises(FiqaError, match=r"unknown option 'scal'\. Did you mean scale\?"):
        fiqa_bench.get_method("test_brightness", scal=2)
    with pytest.raises(FiqaError, match=r"test_brightness\.scale='big'"):
        fiqa_bench.get_method("test_brightness", scale="big")
    with pytest.raises(FiqaError, match="Did you mean folds"):
        fiqa_bench.get_dataset("demo", fold=2)


def test_b_cli_set_typo_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiqa_bench.cli",
            "run",
            "--methods",
            "sharpness",
            "--set",
            "sharpness.typo_option=3",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "typo_option" in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiqa_bench.cli",
            "run",
            "--methods",
            "sharpness",
            "--set",
            "sface.flip_ta=concat",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Did you mean flip_tta" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_b_weights_dir_does_not_recompute(registered, tmp_path: Path) -> None:
    _run(tmp_path, "first", methods="test_brightness")
    run, _ = _run(tmp_path, "second", methods="test_brightness", weights_dir=tmp_path / "elsewhere")
    assert run["cache"]["computed"] == 0


@pytest.mark.slow
def test_c_distributed_honours_dataset_options(tmp_path: Path) -> None:
    """Defect (c): one rank of `python -m fiqa_bench.distributed` with --set demo.folds=2 fills the slot
    that rank 0's evaluation then reads: nothing is computed twice, and the folds are 2."""
    from fiqa_bench.distributed import main

    out = tmp_path / "out"
    rc = main(
        [
            "--methods",
            "sharpness",
            "--models",
            "sface",
            "--datasets",
            "demo",
            "--set",
            "demo.folds=2",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
            "--no-report",
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["cache"]["computed"] == 0, run["cache"]
    assert run["datasets"]["demo"]["folds"] == 2


def test_api_import_has_no_cycle_and_version_imports_nothing_heavy() -> None:
    """`import fiqa_bench.api` loads no module that imports the api back (the old api <-> pipeline
    cycle), and `fiqa-bench --version` loads neither numpy nor torch nor any subcommand module."""
    listing = (
        "import sys, fiqa_bench.api; print(' '.join(m for m in sys.modules if m.startswith('fiqa_bench')))"
    )
    out = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = [m for m in out.stdout.split() if m != "fiqa_bench.api"]
    assert "fiqa_bench.pipeline" not in loaded
    check = (
        "import importlib, sys; importlib.import_module(sys.argv[1]); print('fiqa_bench.api' in sys.modules)"
    )
    for module in loaded:
        r = subprocess.run([sys.executable, "-c", check, module], capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "False", f"importing {module} imports fiqa_bench.api"
    code = (
        "import sys\nfrom fiqa_bench.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('numpy', 'torch', 'pandas', 'fiqa_bench.precomputed', 'fiqa_bench.align',"
        " 'fiqa_bench.reports') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
