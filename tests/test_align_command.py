"""``fiqa-bench align SRC DST`` on real LFW photos with YuNet and MTCNN: same relative paths, 112x112,
RGB-correct files, the no-face/undecodable log and the counts."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fiqa_bench.align import align_folder, make_detector
from fiqa_bench.cli import main
from fiqa_bench.errors import DataFormatError, FiqaError
from fiqa_bench.faces import pick_face, read_rgb, similarity_matrix, warp_to_template

N_PEOPLE = 8  # folders copied from the real LFW subset (about 20 images)


@pytest.fixture(scope="module")
def src(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("align_src") / "photos"
    people = sorted(p for p in (lfw_dir / "images").iterdir() if p.is_dir())
    n = 0
    for person in people:
        if n >= 20:
            break
        shutil.copytree(person, root / person.name)
        n += len(list(person.glob("*.jpg")))
    (root / "other").mkdir()
    cv2.imwrite(str(root / "other" / "blank.png"), np.full((200, 160, 3), 128, np.uint8))  # no face
    (root / "other" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "other" / "notes.txt").write_text("not an image")
    return root


def _faces(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jpg") if p.parent.name != "other")


def _log(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r["path"]: r["problem"] for r in csv.DictReader(f)}


def test_align_command_yunet(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "aligned"
    assert main(["align", str(src), str(dst), "--quiet", "--skip-bad"]) == 0
    out = capsys.readouterr().out
    faces = _faces(src)
    n = len(faces) + 2
    assert f"{n} images: {n - 1} written, 1 with no face" in out and "1 undecodable" in out
    assert _log(dst / "align_log.csv") == {"other/blank.png": "no_face", "other/broken.jpg": "undecodable"}
    # Same relative paths, 112x112; the faceless image is written with the mean landmarks by default.
    for p in faces:
        assert read_rgb(dst / p.relative_to(src)).shape == (112, 112, 3)
    assert (dst / "other" / "blank.png").is_file() and not (dst / "other" / "broken.jpg").exists()
    # RGB-correct files: equal (up to JPEG loss) to warping the RGB source, far from the channel swap.
    det = make_detector("yunet")
    for p in faces[:6]:
        rgb = read_rgb(p)
        want = warp_to_template(rgb, pick_face(det.detect(rgb), rgb.shape).landmarks).astype(np.int32)
        got = cv2.imread(str(dst / p.relative_to(src)))[..., ::-1].astype(np.int32)  # BGR file -> RGB
        assert np.abs(got - want).mean() < 3 < np.abs(got - want[..., ::-1]).mean()


def test_align_skip_policy_and_bad_arguments(src: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataFormatError, match=r"broken\.jpg: cannot be decoded \(corrupt or truncated.*--skip-bad"
    ):
        align_folder(src, tmp_path / "strict", progress=False)
    summary = align_folder(
        src, tmp_path / "a", no_face="skip", log_path=tmp_path / "log.csv", progress=False, skip_bad=True
    )
    assert summary.n_no_face == 1 and summary.no_face == ["other/blank.png"]
    assert not (tmp_path / "a" / "other" / "blank.png").exists()
    assert summary.n_written == summary.n_images - 2 and (tmp_path / "log.csv").is_file()
    with pytest.raises(FiqaError, match="destination is the source folder"):
        align_folder(src, src, progress=False)
    with pytest.raises(FiqaError, match="Unknown face detector 'retina'"):
        make_detector("retina")
    assert main(["align", str(tmp_path / "nowhere"), str(tmp_path / "b")]) == 2


@pytest.mark.slow
def test_align_folder_mtcnn_agrees_with_yunet(src: Path, tmp_path: Path) -> None:
    faces = _faces(src)
    mtcnn = make_detector("mtcnn")
    summary = align_folder(src, tmp_path / "m", detector=mtcnn, workers=1, progress=False, skip_bad=True)
    assert summary.n_no_face == 1 and summary.n_undecodable == 1 and summary.n_written == summary.n_images - 1
    assert _log(tmp_path / "m" / "align_log.csv") == {
        "other/blank.png": "no_face",
        "other/broken.jpg": "undecodable",
    }
    for p in faces:
        assert read_rgb(tmp_path / "m" / p.relative_to(src)).shape == (112, 112, 3)
    # Both give landmarks in template order (image-left eye first, eyes above nose above mouth) and
    # agree: in YuNet's aligned 112x112 frame, MTCNN's landmarks lie a few pixels from YuNet's.
    yunet = make_detector("yunet")
    errs = []
    for p in faces[:8]:
        rgb = read_rgb(p)
        y = pick_face(yunet.detect(rgb), rgb.shape).landmarks
        m = pick_face(mtcnn.detect(rgb), rgb.shape).landmarks
        assert m[0, 0] < m[1, 0] and m[3, 0] < m[4, 0] and m[:2, 1].max() < m[2, 1] < m[3:, 1].min()
        mat = similarity_matrix(y)
        errs.append(np.linalg.norm((m - y) @ mat[:, :2].T, axis=1).mean())
    print(f"YuNet vs MTCNN landmark distance in the aligned frame (px): median {np.median(errs):.2f}")
    assert np.median(errs) < 6
