"""The one table `make bench` prints."""

from dataclasses import dataclass, field


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""

    @property
    def ratio(self) -> str:
        if not self.baseline_value:
            return ""
        return f"{self.value / self.baseline_value:.2f}×"


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, **extra: object) -> Row:
        row = Row(name, value, unit, **extra)  # type: ignore[arg-type]
        self.rows.append(row)
        return row

    def render(self) -> str:
        header = ("measurement", "value", "unit", "raw baseline (same run)", "ratio", "target")
        lines = [header] + [
            (
                r.name,
                f"{r.value:,.1f}" if r.value < 100 else f"{r.value:,.0f}",
                r.unit,
                f"{r.baseline} {r.baseline_value:,.0f}" if r.baseline_value else r.baseline,
                r.ratio,
                r.target,
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        aligned = [
            " | ".join(
                cell.rjust(w) if i in (1, 4) else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
            for line in lines
        ]
        rule = "-+-".join("-" * w for w in widths)
        return "\n".join([aligned[0], rule, *aligned[1:], *(f"  {note}" for note in self.notes)])
