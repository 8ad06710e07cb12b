"""The bench's result rows and the markdown report made of them."""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = [
    "scenario",
    "req/s",
    "p50",
    "p99",
    "ratio to hello",
    "ratio to seed peer",
    "DB queries/req",
    "target",
    "met?",
]

YES = "yes"
NO = "no"
NOT_AVAILABLE = "not available"
ERROR = "error"


@dataclass(slots=True)
class Row:
    """One line of the table, plus the notes that explain it."""

    scenario: str
    target: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    peer_ratio: float | None = None
    queries: float | None = None
    met: str = ""
    notes: list[str] = field(default_factory=list)

    def judge(self, *checks: bool) -> None:
        """Set met? to yes when every check holds."""
        self.met = YES if all(checks) else NO


def _num(value: float | None, fmt: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{suffix}"


def render_table(rows: list[Row]) -> str:
    """The markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join([" --- "] * len(COLUMNS)) + "|"]
    for row in rows:
        cells = [
            row.scenario,
            _num(row.rps, ",.0f"),
            _num(row.p50_ms, ".2f", " ms"),
            _num(row.p99_ms, ".2f", " ms"),
            _num(row.ratio, ".3f"),
            _num(row.peer_ratio, ".2f"),
            _num(row.queries, ".2f"),
            row.target,
            row.met or "—",
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def render_notes(rows: list[Row]) -> str:
    """A bullet list of every row's notes."""
    lines = [f"- **{row.scenario}**: {note}" for row in rows for note in row.notes]
    return "\n".join(lines) if lines else "- none"


def render_report(rows: list[Row], *, command: str, date: str, setup: list[str]) -> str:
    """The whole markdown file: command, date, table, notes and the set-up it ran on."""
    return "\n".join(
        [
            "# chatterd benchmark",
            "",
            f"- command: `{command}`",
            f"- date: {date}",
            "",
            render_table(rows),
            "",
            "## Notes",
            "",
            render_notes(rows),
            "",
            "## Set-up",
            "",
            *[f"- {line}" for line in setup],
            "",
        ]
    )
