"""What one indexing run did: counts by outcome, failures by reason, roots found offline."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Summary:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    embedded: int = 0
    failed: Counter = field(default_factory=Counter)  # short reason -> count
    offline: list[str] = field(default_factory=list)

    def merge(self, other: Summary) -> None:
        for name in ("new", "changed", "unchanged", "moved", "removed", "embedded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.update(other.failed)
        self.offline += other.offline

    def text(self) -> str:
        parts = [
            f"{self.new} new",
            f"{self.changed} changed",
            f"{self.unchanged} unchanged",
            f"{self.moved} moved",
            f"{self.removed} removed",
            f"{sum(self.failed.values())} failed",
        ]
        lines = [", ".join(parts) + f" ({self.embedded} embedded)"]
        lines += [f"  failed: {n} x {reason}" for reason, n in self.failed.most_common()]
        lines += [f"  offline root: {r}" for r in self.offline]
        return "\n".join(lines)


def short_reason(error: str) -> str:
    """A failure's reason without its detail: "truncated or corrupt image (...)" counts as one kind."""
    return error.split(" (", 1)[0]
