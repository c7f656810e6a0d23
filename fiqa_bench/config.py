"""The run parameters, declared once: :class:`RunParams`.

Each field carries its help text and how it appears on the command line (field metadata); the
``fiqa-bench run`` / ``python -m fiqa_bench.distributed`` flags are generated from it
(:func:`add_run_arguments`), ``fiqa_bench.run(**params)`` checks its keywords against it, and the
pipeline resolves it into a :class:`fiqa_bench.pipeline.RunConfig`. Adding a run parameter means
adding one field here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FiqaError

PathLike = str | os.PathLike[str]


def param(
    default: Any,
    help: str,
    *,
    cli: str = "value",
    metavar: str | None = None,
    flag: str | None = None,
    type: Any = None,
) -> Any:
    """A run parameter: ``cli`` is how argparse takes it - "value" (``--name VALUE``), "flag"
    (``--name``, store_true), "negate" (``flag`` turns it off, e.g. --no-report), "set" (repeatable
    ``--set NAME.OPTION=VALUE``) or "weights" (repeatable ``--weights NAME=PATH``)."""
    meta = {"help": help, "cli": cli, "metavar": metavar, "flag": flag, "type": type}
    return field(default=default, metadata=meta)


@dataclass
class RunParams:
    """What the user asks of a run (CLI flags and ``fiqa_bench.run`` keywords), before resolution."""

    methods: str | Sequence[str] | None = param(
        None,
        "comma list of quality methods, 'all', NAME:ARG or NAME@FR_MODEL "
        "(default: face_norm,sharpness,exposure,yunet_confidence)",
    )
    models: str | Sequence[str] | None = param(None, "comma list of FR models or 'all' (default: sface)")
    datasets: str | Sequence[str] | None = param(None, "comma list of datasets or 'all' (default: demo)")
    fmr: str | Sequence[float] | None = param(None, "comma list of FMR targets (default: 1e-3,1e-4)")
    protocols: str | Sequence[str] | None = param(
        None,
        "comma list of evaluation protocols or 'all' (default: the core's default set; an unknown name "
        "lists the known ones)",
    )
    discard_limit: str | float | Sequence[float] | None = param(
        None, "EDC pAUC discard limit(s), comma list, e.g. 0.2,0.3 (default: 0.2)"
    )
    starting_error: str | float | Sequence[float] | None = param(
        None,
        "EDC starting error(s), comma list (Schlett: threshold = quantile of the genuine scores; score < t "
        "is an error); default: the threshold comes from each FMR target",
    )
    quality_scale: str | None = param(
        None,
        "none, minmax or rank: image qualities mapped to integers 0..100 before pair quality "
        "(ISO/IEC 29794-1 practice; default none)",
    )
    out: PathLike | None = param(None, "results folder (default: ./fiqa-results)")
    device: str = param("auto", "auto, cpu, cuda or cuda:N (default: auto)")
    batch_size: int = param(
        64, "images per batch (default 64); methods with a smaller batch of their own keep it", type=int
    )
    workers: int = param(0, "image-decoding threads (default: 0 = in the main thread)", type=int)
    data_root: PathLike | None = param(
        None, "folder holding the datasets (default: $FIQA_BENCH_DATA or ~/.fiqa-bench/data)"
    )
    weights_dir: PathLike | None = param(
        None, "folder holding weight files (default: $FIQA_BENCH_WEIGHTS or ~/.fiqa-bench/weights)"
    )
    weights: Mapping[str, PathLike] | None = param(
        None, "weights file for one method or model (repeatable)", cli="weights", metavar="NAME=PATH"
    )
    options: Mapping[str, Mapping[str, Any]] | None = param(
        None,
        "declared option of a method, model or dataset, e.g. serfiq.T=20 (repeatable; "
        "`fiqa-bench list` shows each card's options)",
        cli="set",
        metavar="NAME.OPTION=VALUE",
        flag="--set",
    )
    cache_dir: PathLike | None = param(
        None, "cache folder (default: $FIQA_BENCH_CACHE or ~/.cache/fiqa-bench)"
    )
    skip_bad: bool = param(
        False, "skip bad images/pairs (counted and reported) instead of stopping", cli="flag"
    )
    bootstrap: int = param(
        0, "bootstrap resamples for AUC confidence intervals (default: 0 = none)", type=int
    )
    seed: int = param(0, "seed of the bootstrap (default 0)", type=int)
    report: bool = param(True, "write results only, no plots/tables", cli="negate", flag="--no-report")
    progress: bool = param(True, "no progress bars", cli="negate", flag="--quiet")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_keywords(cls, **kwargs: Any) -> RunParams:
        """``fiqa_bench.run`` keywords -> RunParams; an unknown keyword is one FiqaError with "did you mean"."""
        from .registry import suggest_names

        names = cls.names()
        for key in kwargs:
            if key not in names:
                close = suggest_names(key, names)
                mean = f" Did you mean {' or '.join(close)}?" if close else ""
                raise FiqaError(f"run: unknown parameter {key!r}.{mean} Parameters: {', '.join(names)}.")
        return cls(**kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunParams:
        """Parsed flags (from :func:`add_run_arguments`) -> RunParams."""
        from .specs import parse_set_options, parse_weights

        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = getattr(args, f.name)
            kind = f.metadata["cli"]
            if kind == "set":
                raw = parse_set_options(raw)
            elif kind == "weights":
                raw = parse_weights(raw) if raw else None
            elif kind == "negate":
                raw = not raw
            values[f.name] = raw
        return cls(**values)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run flags, generated from :class:`RunParams`' fields."""
    for f in dataclasses.fields(RunParams):
        m = f.metadata
        flag = m["flag"] or "--" + f.name.replace("_", "-")
        kind = m["cli"]
        if kind in ("flag", "negate"):
            parser.add_argument(flag, dest=f.name, action="store_true", help=m["help"])
        elif kind in ("set", "weights"):
            parser.add_argument(flag, dest=f.name, action="append", metavar=m["metavar"], help=m["help"])
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            parser.add_argument(
                flag, dest=f.name, default=default, type=m["type"], metavar=m["metavar"], help=m["help"]
            )


def normalise_path(value: PathLike | None) -> Path | None:
    return Path(value).expanduser() if value else None


def normalised(params: RunParams) -> RunParams:
    """Paths expanded, numbers as int, mappings copied: what the pipeline reads."""
    from .preflight import check_counts
    from .specs import parse_weights

    batch_size, workers, bootstrap, seed = check_counts(
        batch_size=params.batch_size if params.batch_size is not None else 64,
        workers=params.workers or 0,
        bootstrap=params.bootstrap or 0,
        seed=params.seed or 0,
    )
    return dataclasses.replace(
        params,
        device=params.device or "auto",
        batch_size=batch_size,
        workers=workers,
        data_root=normalise_path(params.data_root),
        weights_dir=normalise_path(params.weights_dir),
        weights=parse_weights(params.weights),
        options={k: dict(v) for k, v in (params.options or {}).items()},
        cache_dir=normalise_path(params.cache_dir),
        skip_bad=bool(params.skip_bad),
        seed=seed,
        bootstrap=bootstrap,
    )
