"""The evaluation protocol registry: every protocol is a named entry with a frozen card.

A card says where the rule comes from (program, repository, commit), the rule in words and the
parameters with their defaults. ``evaluate`` looks protocols up here by name; nothing else in the
package branches on protocol names. Modules that define protocols (``erc_rules``, ``edc_rules``,
``verification``) register them when ``fiqa_bench.evaluation`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._core import EvaluationError, Scores

KINDS = ("erc", "edc", "verification")
DEFAULT_PROTOCOLS = ("erc", "edc")


@dataclass
class Context:
    """Everything a protocol runner needs besides the quality: one score set and the parameters."""

    sc: Scores
    fmrs: np.ndarray
    fractions: np.ndarray | None  # None: each ERC protocol's own default schedule
    discard_limits: tuple[float, ...]
    starting_errors: tuple[float, ...] | None  # EDC thresholds from these instead of the FMR targets
    normalised: bool = False  # EDC: ``auc`` is the pAUC minus the theoretical best (legacy flag)
    n_folds: int = 10  # verification
    edc_max_points: int | None = None
    folds: np.ndarray | None = None


@dataclass
class Entry:
    """One result of a protocol for one quality: a results row's protocol-specific fields and its curve.

    ``params``: fmr, starting_error, discard_limit (NaN where they do not apply); ``auc``: the area the
    row ranks by (lower = better; NaN for verification); ``fields``: the other row columns; ``curve``:
    (fractions, error) or None (an EDC curve is given once, with its first discard limit)."""

    params: dict[str, float]
    auc: float
    fields: dict[str, Any]
    curve: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class Parameter:
    """One parameter of a protocol: its name (the results column), default and meaning."""

    name: str
    default: Any
    meaning: str


@dataclass(frozen=True)
class ProtocolCard:
    """What a protocol is: enough to reproduce its numbers without reading our code.

    ``kind``: "erc" (threshold recomputed on the retained pairs, one curve per FMR target), "edc"
    (threshold fixed on all pairs, Schlett et al.) or "verification" (accuracy, no quality).
    ``source``: the program whose published numbers this rule reproduces, with repository and commit or
    version where known. ``rule``: the exact rule in words. ``ties``: how tied pair qualities are handled.
    """

    name: str
    kind: str
    title: str
    source: str
    rule: str
    parameters: tuple[Parameter, ...] = ()
    ties: str = ""
    edge_cases: str = ""
    references: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["parameters"] = [asdict(p) for p in self.parameters]
        d["references"] = list(self.references)
        return d

    @property
    def label(self) -> str:
        """Short label for captions: 'ERC (erc: CR-FIQA reference rule)'."""
        return f"{self.kind.upper() if self.kind != 'verification' else 'Verification'} ({self.name}: {self.title})"


@dataclass(frozen=True)
class Protocol:
    """A registered protocol: its card and the function that evaluates it (see ``evaluate``)."""

    card: ProtocolCard
    runner: Callable[..., list[Entry]] = field(compare=False)  # (ctx, quality or None, at=None) -> entries

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def kind(self) -> str:
        return self.card.kind


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(card: ProtocolCard) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``runner`` under ``card.name`` (names are unique)."""
    if card.kind not in KINDS:
        raise ValueError(f"protocol kind must be one of {KINDS}, got {card.kind!r}")

    def deco(runner: Callable[..., Any]) -> Callable[..., Any]:
        if card.name in _PROTOCOLS and _PROTOCOLS[card.name].runner is not runner:
            raise ValueError(f"protocol {card.name!r} is registered twice")
        _PROTOCOLS[card.name] = Protocol(card, runner)
        return runner

    return deco


def protocol_names(kind: str | None = None) -> list[str]:
    """Registered protocol names (of one kind): ERC, then EDC, then verification; registration order within."""
    names = [n for n, p in _PROTOCOLS.items() if kind is None or p.kind == kind]
    return sorted(names, key=lambda n: KINDS.index(_PROTOCOLS[n].kind))


def get_protocol(name: str) -> Protocol:
    try:
        return _PROTOCOLS[name]
    except KeyError:
        raise EvaluationError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}") from None


def protocol_cards() -> list[ProtocolCard]:
    return [_PROTOCOLS[n].card for n in protocol_names()]


def parse_protocols(spec: str | Iterable[str] | None, default: Iterable[str]) -> list[str]:
    """'erc,edc' or a list -> validated unique names in the given order; 'all' = every registered one.

    Raises EvaluationError (one line naming the unknown entry and the known names)."""
    if spec is None:
        items = list(default)
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in spec]
    if items == ["all"]:
        return protocol_names()
    if not items:
        raise EvaluationError(f"give at least one protocol; known: {', '.join(protocol_names())}")
    out: list[str] = []
    for name in items:
        get_protocol(name)
        if name not in out:
            out.append(name)
    return out


def protocols_markdown(differences: dict[str, str] | None = None) -> str:
    """A Markdown table of the registered protocols (name, kind, source, rule), for README and reports.
    ``differences``: optional text per protocol name for a last column (e.g. measured AUC difference
    from erc_strict)."""
    head = "| protocol | kind | source program | rule |" + (
        " difference from erc_strict |" if differences else ""
    )
    sep = "|---|---|---|---|" + ("---|" if differences else "")
    lines = [head, sep]
    for c in protocol_cards():
        cells = [f"`{c.name}`", c.kind, c.source.replace("|", "/"), c.rule.replace("|", "/")]
        if differences:
            cells.append(differences.get(c.name, ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
