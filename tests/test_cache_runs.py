"""Real runs under faults (issue 15): SIGKILL / SIGTERM mid-run, concurrent runs sharing a fresh cache
on unaligned images, damaged crop caches, and a full, read-only or mistaken --out / --cache-dir."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench import cache as cache_mod
from fiqa_bench.cache import Cache
from fiqa_bench.cli import main

DEMO = ["run", "--datasets", "demo", "--models", "sface", "--methods", "sharpness,exposure"]
DEMO += ["--batch-size", "4", "--no-report", "--fmr", "1e-3"]
PRODUCERS = 3  # sface embeddings, sharpness, exposure
PROGRESS = re.compile(rb"demo: sface, sharpness, exposure:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fiqa_bench.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One uninterrupted demo run on a fresh cache: its results.csv is what every faulted run must give."""
    root = tmp_path_factory.mktemp("demo_ref")
    res = subprocess.run(
        _cli(*DEMO, "--quiet", "--cache-dir", str(root / "cache"), "--out", str(root / "out")),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr
    return {"cache": root / "cache", "out": root / "out"}


def _run_until(cache: Path, out: Path, rows: int, sig: int) -> tuple[int, int, bytes]:
    """Start a demo run, send ``sig`` once its progress bar shows ``rows`` finished images; returns the
    last finished count it showed, the total, and its stderr."""
    proc = subprocess.Popen(
        _cli(*DEMO, "--cache-dir", str(cache), "--out", str(out)),
        env=_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    err, seen, total = b"", 0, 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        block = os.read(proc.stderr.fileno(), 65536)
        if not block:
            break
        err += block
        found = PROGRESS.findall(err)
        if found:
            seen, total = int(found[-1][0]), int(found[-1][1])
        if seen >= rows:
            proc.send_signal(sig)
            break
    _, rest = proc.communicate(timeout=300)
    err += rest or b""
    assert 0 < seen < total, "the run finished before it could be killed; raise the total or lower rows"
    return seen, total, err + b"\nexit %d" % proc.returncode


@pytest.mark.slow
def test_sigkill_mid_run_loses_at_most_the_batch_in_flight(
    demo_reference: dict[str, Path], tmp_path: Path
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    seen, total, err = _run_until(cache, out, 12, signal.SIGKILL)
    assert err.endswith(b"exit -9")
    res = subprocess.run(
        _cli(*DEMO, "--quiet", "--cache-dir", str(cache), "--out", str(out)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr
    stats = json.loads((out / "run.json").read_text())["cache"]
    # Every image the killed run had finished (its bar showed `seen`) was cached: the rerun computes at
    # most the rest. Before: chunks every 2,048 rows or 60 s, so all 3 x 108 values were recomputed.
    assert stats["computed"] <= PRODUCERS * (total - seen), (stats, seen)
    assert stats["hits"] >= PRODUCERS * seen and stats["quarantined"] == 0
    assert (out / "results.csv").read_bytes() == (demo_reference["out"] / "results.csv").read_bytes()
    assert _no_temp_files(cache)


@pytest.mark.slow
def test_sigterm_flushes_like_ctrl_c(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    seen, _, err = _run_until(cache, out, 8, signal.SIGTERM)
    assert err.endswith(b"exit 143") and b"terminated (SIGTERM)" in err and b"Traceback" not in err
    slots = [p for p in (cache / "v1").glob("demo-*/*/*") if p.is_dir()]
    assert len(slots) == PRODUCERS
    for slot_dir in slots:
        rows = 0
        for chunk in slot_dir.glob("*.npz"):
            with np.load(chunk) as z:
                rows += len(z["ids"])
        assert rows >= seen
    assert _no_temp_files(cache)


# -- disk faults on real runs -----------------------------------------------------------------------------


def test_out_naming_an_existing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    rc = main([*DEMO, "--quiet", "--out", str(target), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and str(target) in err and "is a file, not a folder" in err
    assert target.read_text() == "keep me"


def _fail_writes(monkeypatch: pytest.MonkeyPatch, under: Path, code: int, name_has: str = "") -> None:
    """Writes of files under ``under`` (whose name contains ``name_has``) fail with ``code`` once the file
    exists (as a full disk does); other writes pass."""
    real_open = open

    class Failing:
        def __init__(self, f: object) -> None:
            self.f = f

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            raise OSError(code, os.strerror(code))

    def fake_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        f = real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]
        if "w" in mode and str(file).startswith(str(under)) and name_has in Path(str(file)).name:
            return Failing(f)
        return f

    monkeypatch.setattr(cache_mod, "open", fake_open, raising=False)


def test_read_only_cache_dir_fails_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    _fail_writes(monkeypatch, cache, errno.EROFS)
    t0 = time.perf_counter()
    rc = main([*DEMO, "--quiet", "--out", str(tmp_path / "out"), "--cache-dir", str(cache)])
    err = capsys.readouterr().err.strip()
    assert (
        rc == 2 and err.count("\n") == 0 and str(cache) in err and "read-only" in err and "--cache-dir" in err
    )
    assert time.perf_counter() - t0 < 30  # no model built, no image scored
    assert _no_temp_files(tmp_path)


@pytest.mark.slow
def test_full_disk_mid_run_is_one_line_and_leaves_no_temp_file(
    demo_reference: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --cache-dir full: the first chunk of the first batch cannot be written.
    cache = tmp_path / "cache"
    _fail_writes(monkeypatch, cache, errno.ENOSPC, name_has="chunk-")
    rc = main([*DEMO, "--quiet", "--out", str(tmp_path / "out1"), "--cache-dir", str(cache)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0, err
    assert "no space left" in err and "needed" in err and "free" in err and str(cache) in err
    assert _no_temp_files(cache)
    # --out full (warm cache, so only the results are written): the first result file fails.
    warm = tmp_path / "warm"
    shutil.copytree(demo_reference["cache"], warm)
    out = tmp_path / "out2"
    _fail_writes(monkeypatch, out, errno.ENOSPC, name_has=".npz")
    rc = main([*DEMO, "--quiet", "--out", str(out), "--cache-dir", str(warm)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and str(out / "pairs") in err and "needed" in err, err
    assert ".tmp" not in err  # names the results file, not a temporary one
    assert _no_temp_files(out)


@pytest.mark.slow
def test_report_failure_keeps_the_results(
    demo_reference: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import fiqa_bench.reports as reports

    out = tmp_path / "out"

    def full(folder: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "figures" / "erc.pdf"))

    monkeypatch.setattr(reports, "write_report", full)
    argv = [a for a in DEMO if a != "--no-report"]
    rc = main([*argv, "--quiet", "--out", str(out), "--cache-dir", str(demo_reference["cache"])])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "erc.pdf: no space left" in err and err.count("\n") == 0
    assert (out / "results.csv").read_bytes() == (demo_reference["out"] / "results.csv").read_bytes()


# -- a real tiny file system (when this machine lets the tests mount one) -------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Path:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_real_full_and_read_only_out(demo_reference: dict[str, Path], tiny_tmpfs: Path) -> None:
    free = shutil.disk_usage(tiny_tmpfs).free
    (tiny_tmpfs / "filler").write_bytes(b"\0" * (free - 8192))  # 8 KiB left: the pairs file will not fit
    out = tiny_tmpfs / "out"
    res = subprocess.run(
        _cli(*DEMO, "--quiet", "--out", str(out), "--cache-dir", str(demo_reference["cache"])),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "no space left" in lines[0] and "needed" in lines[0], (
        res.stderr
    )
    assert _no_temp_files(tiny_tmpfs)
    (tiny_tmpfs / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    res = subprocess.run(
        _cli(
            *DEMO, "--quiet", "--out", str(tiny_tmpfs / "out2"), "--cache-dir", str(demo_reference["cache"])
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "read-only" in lines[0] and "--out" in lines[0], (
        res.stderr
    )


# -- concurrent runs on unaligned images, damaged crop caches --------------------------------------------


@pytest.fixture(scope="module")
def unaligned_pairs(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pairs: CSV over 12 unaligned 250x250 LFW photographs (symlinked), genuine and impostor pairs."""
    root = tmp_path_factory.mktemp("unaligned")
    people = sorted(p for p in (lfw_dir / "images").iterdir() if len(list(p.glob("*.jpg"))) >= 2)[:6]
    rows = ["image_a,image_b,genuine"]
    images = []
    for person in people:
        a, b = sorted(person.glob("*.jpg"))[:2]
        for img in (a, b):
            (root / img.name).symlink_to(img)
            images.append(img.name)
        rows.append(f"{a.name},{b.name},1")
    for i in range(0, len(images) - 2, 2):
        rows.append(f"{images[i]},{images[i + 3]},0")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root / "pairs.csv"


PAIRS_ARGS = [
    "--models",
    "sface",
    "--methods",
    "sharpness,exposure",
    "--no-report",
    "--quiet",
    "--fmr",
    "1e-2",
]


@pytest.mark.slow
def test_concurrent_runs_on_unaligned_pairs_share_a_fresh_cache(
    unaligned_pairs: Path, tmp_path: Path
) -> None:
    ds = f"pairs:{unaligned_pairs}"
    ref = subprocess.run(
        _cli(
            "run",
            "--datasets",
            ds,
            *PAIRS_ARGS,
            "--cache-dir",
            str(tmp_path / "ref_cache"),
            "--out",
            str(tmp_path / "ref"),
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ref.returncode == 0, ref.stderr
    shared = tmp_path / "shared_cache"
    procs = [
        subprocess.Popen(
            _cli(
                "run",
                "--datasets",
                ds,
                *PAIRS_ARGS,
                "--cache-dir",
                str(shared),
                "--out",
                str(tmp_path / f"out{k}"),
            ),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    errs = [p.communicate(timeout=900)[1] for p in procs]
    # Before: FileNotFoundError renaming the shared crops .tmp, or exit 0 with scores of blank crops.
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    expected = (tmp_path / "ref" / "results.csv").read_bytes()
    for k in range(3):
        assert (tmp_path / f"out{k}" / "results.csv").read_bytes() == expected
    assert [p.name for p in (shared / "v1" / "aligned").iterdir()] == [
        p.name for p in (tmp_path / "ref_cache" / "v1" / "aligned").iterdir()
    ]
    assert not list(shared.rglob("quarantine")) and _no_temp_files(shared)
    # A bit flip in the shared crops (before: similarities silently changed) is found, moved aside,
    # rebuilt, and the numbers are the same.
    npy = next((shared / "v1" / "aligned").glob("*/crops.npy"))
    data = bytearray(npy.read_bytes())
    data[len(data) // 2] ^= 0x04
    npy.write_bytes(bytes(data))
    again = subprocess.run(
        _cli(
            "run", "--datasets", ds, *PAIRS_ARGS, "--cache-dir", str(shared), "--out", str(tmp_path / "again")
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and "checksum mismatch" in again.stderr, again.stderr
    assert (tmp_path / "again" / "results.csv").read_bytes() == expected


@pytest.fixture(scope="module")
def tiny_lfw(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LFW folder form with 3 genuine + 3 impostor pairs of the real pairs.txt (symlinked images)."""
    root = tmp_path_factory.mktemp("tiny_lfw")
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    per = int(lines[0].split()[1])
    body = lines[1:4] + lines[1 + per : 4 + per]
    (root / "lfw" / "images").mkdir(parents=True)
    (root / "lfw" / "pairs.txt").write_text("1\t3\n" + "\n".join(body) + "\n")
    for person in {t for ln in body for t in ln.split() if not t.isdigit()}:
        (root / "lfw" / "images" / person).symlink_to(lfw_dir / "images" / person)
    return root


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_lfw_crop_cache_is_rebuilt(tiny_lfw: Path, tmp_path: Path, damage: str) -> None:
    from fiqa_bench.api import get_dataset

    first = get_dataset("lfw", root=tiny_lfw, cache_dir=tmp_path).load(progress=False)
    crops = np.stack([first.faces.image(i) for i in range(len(first.faces))])
    npy = next((tmp_path / "v1" / "aligned").glob("lfw-*/crops.npy"))
    data = npy.read_bytes()
    if damage == "truncated":  # before: every later run crashed until the file was deleted by hand
        npy.write_bytes(data[: len(data) // 3])
    else:
        flipped = bytearray(data)
        flipped[-5000] ^= 0x20
        npy.write_bytes(bytes(flipped))
    second = get_dataset("lfw", root=tiny_lfw, cache_dir=tmp_path).load(progress=False)
    np.testing.assert_array_equal(np.stack([second.faces.image(i) for i in range(len(second.faces))]), crops)
    assert len(list((tmp_path / "v1" / "aligned" / "quarantine").iterdir())) == 1
    assert Cache(tmp_path).root == tmp_path
