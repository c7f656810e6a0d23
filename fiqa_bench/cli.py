"""``fiqa-bench``: a thin command line over the public API. User errors print as one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import FiqaError

# Subcommands that live in other modules: name -> (module, add_arguments, main, help).
EXTERNAL_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "evaluate": (
        "fiqa_bench.precomputed",
        "add_arguments",
        "main",
        "ERC/EDC tables from precomputed comparison and quality files",
    ),
    "report": (
        "fiqa_bench.reports.cli",
        "add_report_arguments",
        "report_main",
        "rebuild every report artefact from a results folder",
    ),
    "compare": (
        "fiqa_bench.reports.cli",
        "add_compare_arguments",
        "compare_main",
        "paired bootstrap test between two methods",
    ),
    "align": (
        "fiqa_bench.align",
        "add_arguments",
        "main",
        "detect 5 landmarks and warp faces to the 112x112 ArcFace template",
    ),
    "pack": (
        "fiqa_bench.training.pack",
        "add_arguments",
        "main",
        "pack an identity-per-folder image tree into train.rec/train.idx",
    ),
    "train": ("fiqa_bench.training.train", "add_arguments", "main", "train CR-FIQA (python or torchrun)"),
}


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    from .config import add_run_arguments

    add_run_arguments(p)


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import RunParams
    from .pipeline import RunConfig, run_pipeline

    _print_table(run_pipeline(RunConfig.from_params(RunParams.from_args(args))))
    return 0


def _print_table(results: object) -> None:
    import pandas as pd

    if not isinstance(results, pd.DataFrame) or results.empty:
        print("no results")
        return
    from .results import variant_column

    shown = results.assign(
        protocol=variant_column(results),  # protocol + parameters (e.g. each discard limit)
        fmr=[
            f"{f:g}" if f == f else "-" for f in results["fmr"].astype(float)
        ],  # '-': EDC from a starting error
    )
    areas = shown[shown["method"].notna() & shown["auc"].notna()]
    with pd.option_context(
        "display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4f}".format
    ):
        if len(areas):
            table = areas.pivot_table(
                index="method",
                columns=["dataset", "fr_model", "protocol", "fmr"],
                values="auc",
                aggfunc="first",
            )
            print("AUC / pAUC per protocol (lower is better; the report names each protocol's rule):")
            print(table.to_string())
    if "accuracy" in results.columns:
        for rec in results[results["accuracy"].notna()].to_dict("records"):
            scores = rec.get("scores") if isinstance(rec.get("scores"), str) else "embeddings"
            print(
                f"{rec['protocol']} ({rec['dataset']}, {rec['fr_model']}, {scores}): "
                f"{100 * rec['accuracy']:.2f}% ± {100 * rec.get('accuracy_std', float('nan')):.2f}"
            )


def _add_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "what", nargs="?", default="all", choices=["all", "methods", "models", "datasets", "protocols"]
    )
    p.add_argument("--data-root", help="folder holding the datasets")
    p.add_argument("--weights-dir", help="folder holding weight files")


def _cmd_list(args: argparse.Namespace) -> int:
    from .listing import list_entries

    print(list_entries(args.what, data_root=args.data_root, weights_dir=args.weights_dir))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="fiqa-bench",
        description="Face Image Quality Assessment benchmark: ERC/EDC curves, AUC tables and reports.",
    )
    parser.add_argument("--version", action="version", version=f"fiqa-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("run", help="score, embed, evaluate and report (the main job)")
    _add_run_arguments(p)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("list", help="list methods, FR models and datasets with what each needs")
    _add_list_arguments(p)
    p.set_defaults(func=_cmd_list)
    for name, (module, add_fn, main_fn, help_text) in EXTERNAL_COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=None, external=(name, module, main_fn))
        if name != command:
            continue  # imported only when this subcommand runs: `--version` and `--help` stay fast
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            p.set_defaults(unavailable=str(exc))
            continue
        getattr(mod, add_fn)(p)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first token that is one), without parsing the rest."""
    return next((a for a in argv if a in EXTERNAL_COMMANDS or a in ("run", "list")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    from .cache import Terminated, terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # SIGTERM flushes finished work like Ctrl-C does
            if args.func is not None:
                return int(args.func(args) or 0)
            name, module, main_fn = args.external
            if getattr(args, "unavailable", None):
                raise FiqaError(f"fiqa-bench {name} is unavailable: {args.unavailable}")
            return int(getattr(importlib.import_module(module), main_fn)(args) or 0)
    except FiqaError as exc:
        print(f"fiqa-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"fiqa-bench: {what}; finished work is cached and a rerun resumes from it.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
