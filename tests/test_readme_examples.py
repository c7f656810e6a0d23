"""The README's "Adding a method, FR model or dataset" code blocks, executed as written, and the
example plug-ins run end to end (a pairs file of a few real LFW faces) without any private module."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

import fiqa_bench
from fiqa_bench.registry import DATASETS, FR_MODELS, METHODS

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Adding a method, FR model or dataset"


def readme_blocks() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def readme_plugins():
    blocks = readme_blocks()
    assert len(blocks) >= 3, "the README section lost its examples"
    before = (set(METHODS.names()), set(FR_MODELS.names()), set(DATASETS.names()))
    for i, code in enumerate(blocks):
        module = types.ModuleType(f"readme_example_{i}")
        exec(compile(code, f"README.md block {i}", "exec"), module.__dict__)
    added = (
        set(METHODS.names()) - before[0],
        set(FR_MODELS.names()) - before[1],
        set(DATASETS.names()) - before[2],
    )
    yield added
    for registry, names in zip((METHODS, FR_MODELS, DATASETS), added, strict=True):
        for name in names:
            registry.unregister(name)


def test_readme_blocks_register_plugins(readme_plugins) -> None:
    methods, models, datasets = readme_plugins
    assert {"brightness", "embedding_spread"} <= methods and "pixels8" in models and "my_pairs" in datasets
    # Imports in the examples name public modules only.
    for code in readme_blocks():
        for mod in re.findall(r"^(?:from|import) ([\w.]+)", code, flags=re.M):
            assert not any(part.startswith("_") for part in mod.split(".")), mod


def test_readme_method_options_and_direction(readme_plugins, aligned_lfw_sample) -> None:
    images = aligned_lfw_sample["images"][:4]
    q1 = fiqa_bench.get_method("brightness").score(images)
    q2 = fiqa_bench.get_method("brightness", gamma=2).score(images)
    grey = images.reshape(4, -1).mean(axis=1) / 255.0
    np.testing.assert_allclose(q1, grey)
    np.testing.assert_allclose(q2, grey**2)
    with pytest.raises(fiqa_bench.FiqaError, match="Did you mean gamma"):
        fiqa_bench.get_method("brightness", gama=2)


def test_readme_plugins_run_end_to_end(readme_plugins, lfw_dir: Path, tmp_path: Path) -> None:
    """6 genuine + 6 impostor pairs of the real LFW pairs.txt, as a pairs file (aligned on the fly)."""
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    per = int(lines[0].split()[1])
    rows = ["image_a,image_b,genuine"]
    for line in lines[1:7]:
        name, n1, n2 = line.split()
        rows.append(f"{name}/{name}_{int(n1):04d}.jpg,{name}/{name}_{int(n2):04d}.jpg,1")
    for line in lines[1 + per : 7 + per]:
        a, n1, b, n2 = line.split()
        rows.append(f"{a}/{a}_{int(n1):04d}.jpg,{b}/{b}_{int(n2):04d}.jpg,0")
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    results = fiqa_bench.run(
        methods="brightness,embedding_spread",
        models="pixels8",
        datasets=f"pairs:{csv}",
        fmr="0.2",
        out=out,
        cache_dir=tmp_path / "cache",
        data_root=tmp_path,
        options={"brightness": {"gamma": 2.0}, "pairs": {"images": str(lfw_dir / "images")}},
        report=False,
        progress=False,
    )
    assert set(results["method"]) == {"brightness", "embedding_spread"}
    assert np.isfinite(results["auc"]).all()
    run = json.loads((out / "run.json").read_text())
    assert run["methods"]["brightness"]["options"] == {"gamma": "2.0"}
    assert run["datasets"][f"pairs:{csv}"]["n_pairs"] == 12


@pytest.fixture(scope="module")
def my_pairs_root(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<root>/my_pairs/: 4 genuine + 4 impostor pairs of the real LFW pairs.txt, aligned with YuNet to
    112x112 PNGs, listed as the README's dataset expects."""
    import cv2

    from fiqa_bench.faces import YuNetDetector, align, read_rgb

    root = tmp_path_factory.mktemp("readme_dataset")
    folder = root / "my_pairs"
    folder.mkdir()
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    per = int(lines[0].split()[1])
    det = YuNetDetector()
    out = []

    def png(name: str, n: str) -> str:
        file = f"{name}_{int(n):04d}.png"
        if not (folder / file).is_file():
            face, _ = align(read_rgb(lfw_dir / "images" / name / f"{name}_{int(n):04d}.jpg"), det)
            assert face is not None
            cv2.imwrite(str(folder / file), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        return file

    for line in lines[1:5]:
        name, n1, n2 = line.split()
        out.append(f"{png(name, n1)} {png(name, n2)} 1")
    for line in lines[1 + per : 5 + per]:
        a, n1, b, n2 = line.split()
        out.append(f"{png(a, n1)} {png(b, n2)} 0")
    (folder / "pairs.txt").write_text("\n".join(out) + "\n")
    return root


def test_readme_dataset_runs_and_rejects_bad_lines(
    readme_plugins, my_pairs_root: Path, tmp_path: Path
) -> None:
    results = fiqa_bench.run(
        methods="brightness",
        models="pixels8",
        datasets="my_pairs",
        data_root=my_pairs_root,
        options={"my_pairs": {"folds": 2}},
        fmr="0.25",
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        report=False,
        progress=False,
    )
    assert set(results["dataset"]) == {"my_pairs"} and np.isfinite(results["auc"]).all()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["datasets"]["my_pairs"]["n_pairs"] == 8 and run["datasets"]["my_pairs"]["folds"] == 2
    # A bad line: one error naming file and line, or a counted skip.
    broken = tmp_path / "broken"
    (broken / "my_pairs").mkdir(parents=True)
    for f in (my_pairs_root / "my_pairs").iterdir():
        (broken / "my_pairs" / f.name).write_bytes(f.read_bytes())
    listing = broken / "my_pairs" / "pairs.txt"
    listing.write_text(
        listing.read_text()
        + "missing.png "
        + sorted(p.name for p in listing.parent.glob("*.png"))[0]
        + " 1\n"
    )
    with pytest.raises(
        fiqa_bench.FiqaError, match=r"pairs.txt:9: missing.png is not a readable 112x112 image"
    ):
        fiqa_bench.get_dataset("my_pairs", root=broken).load(progress=False)
    data = fiqa_bench.get_dataset("my_pairs", root=broken).load(skip_bad=True, progress=False)
    assert len(data.pairs) == 8 and len(data.skipped) == 1
