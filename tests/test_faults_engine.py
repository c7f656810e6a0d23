"""Issue 15: engine-side faults, each kept as a test with the right outcome — one-line errors before any
work (preflight, numeric flags, --weights typos, training config), checkpoint messages (whole pickled
model, NaN weights), "installed but broken" packages, landmark measures that score "no face" as worst,
112x112 photos that are not aligned, and very large photos."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fiqa_bench
from fiqa_bench.cli import main as cli_main
from fiqa_bench.errors import (
    BrokenDependencyError,
    CheckpointError,
    FiqaError,
    MissingDependencyError,
    import_optional,
)
from fiqa_bench.faces import YuNetDetector, alignment_offset, pick_face, read_rgb

# -- one-line errors before any work -----------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli_main(argv)
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--batch-size", "-5"], "--batch-size -5: must be at least 1"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--workers", "-1"], "--workers -1: must be at least 0"),
        (["--bootstrap", "-1"], "--bootstrap -1: must be at least 0"),
    ],
)
def test_bad_run_numbers_are_one_line_errors(flags: list[str], expect: str, tmp_path: Path, capsys) -> None:
    rc, err = _run(["run", "--out", str(tmp_path / "out"), "--quiet", *flags], capsys)
    assert rc == 2 and expect in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_preflight_lists_everything_missing_at_once(tmp_path: Path, capsys) -> None:
    """The README's own example on a fresh machine: both weight files and the dataset, in one message."""
    out = tmp_path / "out"
    rc, err = _run(
        ["run", "--methods", "crfiqa_l,crfiqa_s", "--datasets", "xqlfw", "--data-root", str(tmp_path / "data"),
         "--weights-dir", str(tmp_path / "w"), "--out", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert rc == 2 and "Traceback" not in err
    assert "181952backbone.pth" in err and "32572backbone.pth" in err and "xqlfw" in err
    assert str(tmp_path / "w") in err  # where to put the weights: the user's own folder
    assert "3 thing(s)" in err and not out.exists()  # nothing was started


def test_weights_for_a_name_not_in_the_run_is_refused_with_did_you_mean(tmp_path: Path, capsys) -> None:
    rc, err = _run(
        [
            "run",
            "--methods",
            "sharpness",
            "--weights",
            "arcfce_r50=/x.pth",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ],
        capsys,
    )
    assert rc == 2 and "'arcfce_r50' is not a method or FR model of this run" in err and "arcface_r50" in err


def test_named_methods_fitting_no_model_are_all_listed_before_work(tmp_path: Path, capsys) -> None:
    rc, err = _run(
        [
            "run",
            "--methods",
            "sharpness,grafiqs,faceqan",
            "--models",
            "sface",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ],
        capsys,
    )
    assert rc == 2 and "grafiqs" in err and "faceqan" in err and "nothing was computed" in err


# -- checkpoints -----------------------------------------------------------------------------------------------


def test_whole_pickled_model_says_resave_state_dict(tmp_path: Path, recwarn) -> None:
    from fiqa_bench.fr_models._checkpoint import read_checkpoint

    path = tmp_path / "model.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 4)), path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert "torch.save(model.state_dict(), PATH)" in msg and "\x1b" not in msg and "\n" not in msg
    assert not [w for w in recwarn if "torch" in str(w.filename)]  # nothing printed before the error


def test_nan_weights_name_the_file_and_tensor(tmp_path: Path) -> None:
    from fiqa_bench.fr_models._checkpoint import read_checkpoint

    path = tmp_path / "181952backbone.pth"
    torch.save({"conv1.weight": torch.ones(2), "fc.weight": torch.tensor([1.0, float("nan")])}, path)
    with pytest.raises(
        CheckpointError,
        match=r"181952backbone\.pth: 1 tensor\(s\) hold NaN or inf values \(first: fc\.weight\)",
    ):
        read_checkpoint(path)


# -- dependencies ------------------------------------------------------------------------------------------------


def test_installed_but_broken_differs_from_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fiqa_broken_pkg_xyz"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import fiqa_missing_dep_abc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        BrokenDependencyError, match=r"installed but fails to import.*pip install fiqa_missing_dep_abc"
    ):
        import_optional("fiqa_broken_pkg_xyz", "a detector", "fiqa-broken-pkg", "pip install fiqa-broken-pkg")
    with pytest.raises(MissingDependencyError, match="which is not installed"):
        import_optional("fiqa_absent_pkg_xyz", "a detector", "fiqa-absent-pkg", "pip install fiqa-absent-pkg")


def test_facenet_runtime_imports_are_declared() -> None:
    """facenet-pytorch is installed --no-deps: what it imports at run time must be a declared dependency."""
    import tomllib

    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    names = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in deps}
    assert {"requests", "pillow", "torchvision", "opencv-python-headless", "tqdm", "numpy"} <= names


# -- landmark measures: no face is the worst score ------------------------------------------------------------


@pytest.mark.realdata
def test_no_face_photo_scores_worst_on_landmark_measures(lfw_dir: Path, tmp_path: Path) -> None:
    photos = sorted((lfw_dir / "images").glob("*/*.jpg"))[:8]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder / p.name)
    rng = np.random.default_rng(0)
    wall = cv2.GaussianBlur(rng.integers(0, 255, (250, 250, 3), dtype=np.uint8), (0, 0), 8)  # no face
    cv2.imwrite(str(folder / "wall.jpg"), wall)
    names = [p.name for p in photos] + ["wall.jpg"]
    rows = [f"{names[i]},{names[(i + 1) % len(names)]},0" for i in range(len(names))]
    (tmp_path / "pairs.csv").write_text("image_a,image_b,genuine\n" + "\n".join(rows) + "\n")
    data = fiqa_bench.get_dataset(
        f"pairs:{tmp_path / 'pairs.csv'}", images="imgs", cache_dir=str(tmp_path / "c")
    ).load(progress=False)
    wall_i = data.faces.ids.index("wall.jpg")
    assert np.isnan(data.faces.meta["landmarks"][wall_i]).all()  # the stand-in landmarks are not "measured"
    images = np.stack([data.faces.loader(i) for i in range(len(data.faces))])
    for name in ("head_pose", "inter_eye_distance"):
        q = fiqa_bench.get_method(name).score(images, data.faces.meta)
        assert q[wall_i] < np.delete(q, wall_i).min(), name


def test_flat_aligned_crop_gets_the_worst_pose() -> None:
    flat = np.full((2, 112, 112, 3), 128, np.uint8)
    raw = fiqa_bench.get_method("head_pose").raw_scores(flat)
    assert np.array_equal(raw, [90.0, 90.0])


# -- 112x112 photos that are not aligned ------------------------------------------------------------------------


@pytest.mark.realdata
def test_resized_photos_are_detected_as_not_aligned(lfw_dir: Path, tmp_path: Path, caplog) -> None:
    photos = sorted((lfw_dir / "images").glob("*/*.jpg"))[::97][:12]
    folder = tmp_path / "small"
    folder.mkdir()
    for p in photos:
        cv2.imwrite(
            str(folder / p.name), cv2.resize(cv2.imread(str(p)), (112, 112), interpolation=cv2.INTER_AREA)
        )
    rows = [f"{photos[i].name},{photos[i + 1].name},0" for i in range(len(photos) - 1)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    spec = f"pairs:{tmp_path / 'pairs.csv'}"
    with caplog.at_level(logging.WARNING, logger="fiqa_bench.datasets"):
        auto = fiqa_bench.get_dataset(spec, images="small", cache_dir=str(tmp_path / "c")).load(
            progress=False
        )
    assert not auto.aligned and "not aligned to the ArcFace template" in caplog.text  # re-aligned, said so
    assert auto.info["alignment_offset_px"] > 5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fiqa_bench.datasets"):
        forced = fiqa_bench.get_dataset(spec, images="small", aligned="true").load(progress=False)
    assert forced.aligned and "pass aligned=false" in caplog.text


@pytest.mark.realdata
def test_aligned_crops_pass_the_alignment_check(aligned_lfw_sample: dict) -> None:
    offset, measured = alignment_offset(aligned_lfw_sample["images"][:24])
    assert measured >= 20 and offset < 4


# -- very large photos ----------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_huge_photo_face_is_found_on_a_downscaled_copy(lfw_dir: Path) -> None:
    rgb = read_rgb(lfw_dir / "images" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg")
    det = YuNetDetector()
    small = pick_face(det.detect(rgb), rgb.shape)
    big = cv2.resize(rgb, (8000, 8000), interpolation=cv2.INTER_LINEAR)
    found = pick_face(det.detect(big), big.shape)
    assert small is not None and found is not None
    assert np.abs(found.landmarks * 250 / 8000 - small.landmarks).mean() < 4  # in the original's pixels


# -- training configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--batch-size", "0"], "batch_size = 0 must be >= 1"),
        (["--workers", "-1"], "workers = -1 must be >= 0"),
        (["--set", "lr=abc"], "--set lr=abc: expected a number"),
        (["--set", "epochs=2.5"], "--set epochs=2.5: expected a number (an integer)"),
    ],
)
def test_bad_training_settings_are_one_line_errors(
    flags: list[str], expect: str, tmp_path: Path, capsys
) -> None:
    rc, err = _run(
        ["train", "--config", "crfiqa_s", "--data", "synthetic:64:4", "--out", str(tmp_path / "t"), *flags],
        capsys,
    )
    assert rc == 2 and expect in err and "Traceback" not in err


def test_num_classes_below_the_data_is_refused_before_training(tmp_path: Path, capsys) -> None:
    rc, err = _run(
        ["train", "--config", "crfiqa_s", "--data", "synthetic:64:8", "--num-classes", "4", "--network", "iresnet:1,1,1,1",
         "--batch-size", "8", "--max-steps", "1", "--out", str(tmp_path / "t"), "--quiet"],
        capsys,
    )  # fmt: skip
    assert rc == 2 and "num_classes 4 is below the 8 identities" in err


def test_errors_raised_in_dataloader_workers_arrive_as_one_line() -> None:
    from fiqa_bench.training.data import worker_errors
    from torch.utils.data import DataLoader

    loader = DataLoader(_BadRecords(), batch_size=2, num_workers=1)
    with pytest.raises(FiqaError) as info:
        list(worker_errors(loader))
    assert str(info.value).startswith("/data/train.rec: record key 3 holds no decodable image")
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)


class _BadRecords(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        from fiqa_bench.errors import DataFormatError

        if i == 3:
            raise DataFormatError(
                "/data/train.rec", "record key 3 holds no decodable image", "pack the set again"
            )
        return torch.zeros(2)


def test_cli_is_importable_without_side_effects() -> None:
    """Guard for the subprocess-based tests above: the CLI module runs as a script."""
    out = subprocess.run(
        [sys.executable, "-m", "fiqa_bench.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("fiqa-bench")
