"""The benchmark's figures: per-endpoint medians, targets met or missed, table and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.wrk import Load, WrkResult

NA = "n/a"


@dataclass
class Endpoint:
    """One endpoint under wrk, its matching baseline and its targets."""

    key: str
    label: str
    server: str  # "api", "baseline", "api_scale" (--users) or "api_todos" (--todos): a copy
    load: Load
    baseline: str | None = None  # key of the matching baseline endpoint
    min_ratio: float | None = None  # of the baseline's requests/s
    max_p99_ms: float | None = None
    unavailable: str | None = None  # why it is not measured ("n/a")
    rounds: list[WrkResult] = field(default_factory=list)

    def _median(self, value: Callable[[WrkResult], float]) -> float | None:
        return statistics.median(value(r) for r in self.rounds) if self.rounds else None

    @property
    def rps(self) -> float | None:
        return self._median(lambda r: r.rps)

    @property
    def p50_ms(self) -> float | None:
        """Median over the rounds; None when no request completed (no latency to tell)."""
        return self._median(lambda r: r.p50_ms) if self.requests else None

    @property
    def p99_ms(self) -> float | None:
        return self._median(lambda r: r.p99_ms) if self.requests else None

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    def to_json(self, ratio: float | None) -> dict[str, Any]:
        return {
            "key": self.key,
            "endpoint": self.label,
            "server": self.server,
            "unavailable": self.unavailable,
            "requests_per_s": _round(self.rps),
            "p50_ms": _round(self.p50_ms, 3),
            "p99_ms": _round(self.p99_ms, 3),
            "errors": self.errors if self.rounds else None,
            "baseline": self.baseline,
            "ratio_to_baseline": _round(ratio, 3),
            "rounds": [asdict(r) | {"rps": round(r.rps, 1)} for r in self.rounds],
        }


@dataclass(frozen=True)
class Target:
    """One target of the Performance section, with this run's figure."""

    what: str
    figure: str
    target: str
    met: bool | None  # None: not measured in this run
    note: str = ""

    @property
    def result(self) -> str:
        return NA if self.met is None else ("met" if self.met else "MISSED")


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def ratio(endpoint: Endpoint, endpoints: dict[str, Endpoint]) -> float | None:
    """Requests/s of ``endpoint`` over its baseline's (same run), or None."""
    if endpoint.baseline is None or endpoint.rps is None:
        return None
    base = endpoints[endpoint.baseline].rps
    return endpoint.rps / base if base else None


def endpoint_targets(endpoints: dict[str, Endpoint]) -> list[Target]:
    """The ratio and p99 targets of every endpoint that has them."""
    targets: list[Target] = []
    for ep in endpoints.values():
        if ep.min_ratio is not None:
            base = endpoints[ep.baseline] if ep.baseline else None
            value = ratio(ep, endpoints)
            why = ep.unavailable or (base.unavailable if base else "no baseline") or ""
            targets.append(
                Target(
                    what=f"{ep.label}: req/s vs {base.label if base else '?'}",
                    figure=NA if value is None else f"{value:.0%}",
                    target=f">= {ep.min_ratio:.0%}",
                    met=None if value is None else value >= ep.min_ratio,
                    note=why if value is None else "",
                )
            )
        if ep.max_p99_ms is not None:
            p99 = ep.p99_ms
            targets.append(
                Target(
                    what=f"{ep.label}: p99 at 32 connections",
                    figure=NA if p99 is None else f"{p99:.1f} ms",
                    target=f"<= {ep.max_p99_ms:.0f} ms",
                    met=None if p99 is None else p99 <= ep.max_p99_ms,
                    note=ep.unavailable or "",
                )
            )
    return targets


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return NA if value is None else f"{value:{spec}}{unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _short_target(target: Target) -> str:
    return "p99 " + target.target if target.target.endswith("ms") else target.target


def endpoint_table(endpoints: dict[str, Endpoint]) -> str:
    """Requests/s, p50, p99, errors and the ratio to the baseline, one row per endpoint."""
    by_endpoint: dict[str, list[Target]] = {}
    for target in endpoint_targets(endpoints):
        by_endpoint.setdefault(target.what.split(":")[0], []).append(target)
    rows = []
    for ep in endpoints.values():
        value = ratio(ep, endpoints)
        targets = by_endpoint.get(ep.label, [])
        if ep.unavailable:
            result = f"{NA} ({ep.unavailable})"
        elif not targets:
            result = ""
        elif any(t.met is False for t in targets):
            result = "MISSED"
        else:
            result = "met" if all(t.met for t in targets) else NA
        rows.append(
            [
                ep.label,
                ep.server,
                _fmt(ep.rps, ",.0f"),
                _fmt(ep.p50_ms, ".2f", " ms"),
                _fmt(ep.p99_ms, ".2f", " ms"),
                str(ep.errors) if ep.rounds else NA,
                endpoints[ep.baseline].label if ep.baseline else "",
                "" if ep.baseline is None else _fmt(value, ".0%"),
                ", ".join(_short_target(t) for t in targets),
                result,
            ]
        )
    header = ["endpoint", "server", "req/s", "p50", "p99", "errors", "baseline", "ratio"]
    header += ["target", "result"]
    return _table(header, rows, right={2, 3, 4, 5, 7})


def target_table(targets: Sequence[Target]) -> str:
    """Every target: this run's figure, the target, met / MISSED / n/a."""
    rows = [
        [t.what, t.figure, t.target, t.result + (f" ({t.note})" if t.note else "")] for t in targets
    ]
    return _table(["what", "figure", "target", "result"], rows, right=set())
