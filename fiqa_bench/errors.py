"""User-facing errors: one line that names the file (or name) and the fix.

The CLI prints ``FiqaError`` messages without a traceback; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FiqaError(Exception):
    """Base of every error a user can cause and fix."""


class UnknownNameError(FiqaError, KeyError):
    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str]) -> None:
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        listing = f" Known {kind}s: {', '.join(known)}." if known else ""
        super().__init__(f"Unknown {kind} {name!r}.{hint}{listing}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingWeightsError(FiqaError, FileNotFoundError):
    def __init__(self, what: str, filename: str, searched: list[Path], source: str = "") -> None:
        where = ", ".join(str(p) for p in searched) or "(no folder searched)"
        get = f" Get it from: {source}." if source else ""
        super().__init__(
            f"{what}: weight file {filename!r} not found (looked in {where}). Put it in the weights "
            f"directory (--weights-dir or FIQA_BENCH_WEIGHTS) or pass weights=PATH.{get}"
        )


class DataFormatError(FiqaError, ValueError):
    """A data file that does not follow its published format."""

    def __init__(self, path: str | Path, problem: str, fix: str = "", line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        tail = f" Fix: {fix}" if fix else ""
        super().__init__(f"{where}: {problem}.{tail}")
        self.path = str(path)
        self.line = line


class MissingDataError(FiqaError, FileNotFoundError):
    def __init__(self, what: str, path: str | Path, fix: str) -> None:
        super().__init__(f"{what}: {path} not found. {fix}")


class UnsupportedCombinationError(FiqaError, ValueError):
    pass


class CheckpointError(FiqaError, ValueError):
    pass


class MissingDependencyError(FiqaError, ImportError):
    def __init__(self, what: str, package: str, install: str) -> None:
        super().__init__(
            f"{what} needs the Python package {package!r}, which is not installed. Install it: {install}"
        )


class BrokenDependencyError(FiqaError, ImportError):
    """A package that is installed but fails to import (typically a dependency of a --no-deps wheel)."""

    def __init__(self, what: str, package: str, exc: BaseException) -> None:
        missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fix = (
            f"install its missing dependency: pip install {missing}"
            if missing
            else f"reinstall it: pip install --force-reinstall {package}"
        )
        super().__init__(
            f"{what}: the Python package {package!r} is installed but fails to import ({first}). Fix: {fix}"
        )


def import_optional(module: str, what: str, package: str, install: str) -> Any:
    """Import ``module`` for ``what``; one-line errors that tell "not installed" (MissingDependencyError)
    from "installed but broken" (BrokenDependencyError, e.g. a --no-deps wheel whose own imports fail)."""
    import importlib
    import importlib.util

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        try:
            installed = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            installed = False
        if installed:
            raise BrokenDependencyError(what, package, exc) from None
        raise MissingDependencyError(what, package, install) from None
