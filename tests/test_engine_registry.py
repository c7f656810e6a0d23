"""Registries: cards as data, aliases, "did you mean", weights lookup, entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fiqa_bench
from fiqa_bench.errors import FiqaError, MissingWeightsError, UnknownNameError
from fiqa_bench.registry import Card, Registry, WeightFile, find_weight_file, resolve_weights


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError) as exc:
        fiqa_bench.get_dataset("lfww")
    msg = str(exc.value)
    assert "Did you mean 'lfw'" in msg
    assert "\n" not in msg


def test_aliases_and_case_resolve_to_the_same_card(tmp_path: Path) -> None:
    reg = Registry("method", "fiqa_bench.methods", "fiqa_bench.test_none")
    reg._loaded = True  # no discovery for this private registry
    card = Card(name="Sharp_Thing", kind="method", summary="x", aliases=("st",))
    reg.register(card)(lambda card, **kw: None)
    assert reg.card("sharp_thing") is card
    assert reg.card("ST") is card
    assert reg.suggest("sharp_thin") == ["sharp_thing"]


def test_card_kind_must_match_registry() -> None:
    reg = Registry("method", "fiqa_bench.methods", "fiqa_bench.test_none")
    with pytest.raises(ValueError):
        reg.register(Card(name="x", kind="dataset", summary="x"))


def test_card_fingerprint_changes_with_content() -> None:
    a = Card(name="a", kind="method", summary="x")
    b = Card(name="a", kind="method", summary="x", score_direction="lower_better")
    assert a.fingerprint() == Card(name="a", kind="method", summary="x").fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_missing_weights_error_names_file_and_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIQA_BENCH_WEIGHTS", str(tmp_path / "env"))
    card = Card(
        name="m",
        kind="method",
        summary="x",
        weights=(WeightFile("181952backbone.pth", source="the authors' drive"),),
    )
    with pytest.raises(MissingWeightsError) as exc:
        resolve_weights(card, weights_dir=tmp_path / "cli")
    msg = str(exc.value)
    assert "181952backbone.pth" in msg and str(tmp_path / "cli") in msg and str(tmp_path / "env") in msg
    assert "--weights-dir" in msg and "\n" not in msg
    # Found once it is placed in the env folder, also one level down.
    (tmp_path / "env" / "crfiqa").mkdir(parents=True)
    (tmp_path / "env" / "crfiqa" / "181952backbone.pth").write_bytes(b"x")
    assert resolve_weights(card).name == "181952backbone.pth"


def test_packaged_weights_are_found_in_the_wheel() -> None:
    from fiqa_bench.faces import YUNET_WEIGHTS

    path, _ = find_weight_file(YUNET_WEIGHTS)
    assert path is not None and path.stat().st_size > 100_000


def test_explicit_weights_path_must_exist(tmp_path: Path) -> None:
    card = Card(name="m", kind="method", summary="x")
    with pytest.raises(FiqaError, match="does not exist"):
        resolve_weights(card, weights=tmp_path / "nope.pth")


PLUGIN_MODULE = """
import numpy as np
from fiqa_bench.registry import Card, register_method
from fiqa_bench.types import QualityMethod

CARD = Card(name="tiny_plugin_brightness", kind="method", summary="mean grey level (test plugin)",
            licence="MIT", normalisation="x/255", score_direction="lower_better")

@register_method(CARD)
class Tiny(QualityMethod):
    def _raw_batch(self, images, meta):
        return images.reshape(len(images), -1).mean(axis=1) / 255.0
"""


@pytest.mark.slow
def test_entry_point_plugin_is_listed_and_runnable(tmp_path: Path) -> None:
    src = tmp_path / "plugin"
    (src / "tiny_fiqa_plugin").mkdir(parents=True)
    (src / "tiny_fiqa_plugin" / "__init__.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tiny-fiqa-plugin"
        version = "0.0.1"
        [project.entry-points."fiqa_bench.methods"]
        tiny = "tiny_fiqa_plugin"
        [tool.setuptools]
        packages = ["tiny_fiqa_plugin"]
    """)
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        ["fiqa-bench", "list", "methods"], env=env, capture_output=True, text=True, check=True
    )
    assert "tiny_plugin_brightness" in listed.stdout
    code = (
        "import numpy as np, fiqa_bench;"
        "m = fiqa_bench.get_method('tiny_plugin_brightness');"
        "img = np.full((2, 112, 112, 3), 100, np.uint8); img[1] = 200;"
        "print(m.score(img).round(4).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # lower_better raw brightness is flipped once: the brighter image scores lower.
    assert out.stdout.strip() == str([-round(100 / 255, 4), -round(200 / 255, 4)])
    assert np.isclose(-100 / 255, -0.3922, atol=1e-4)
