"""Benchmark results: a list of figures, saved as JSON under bench/out/ and appended to RESULTS.md.

RESULTS.md is shared by several benchmarks: this module only ever appends a section to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.machine import load_average

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
TABLE_HEAD = "| figure | value | unit | load (1 min) | note |"


@dataclass
class Figure:
    section: str  # e.g. "indexing", "query"
    name: str  # what was measured, in words
    value: float | None  # None: not measured (see note)
    unit: str
    load: list[float] = field(default_factory=load_average)  # 1/5/15-min load average when taken
    note: str = ""


@dataclass
class Report:
    machine: dict
    figures: list[Figure] = field(default_factory=list)

    def add(self, section: str, name: str, value: float | None, unit: str, note: str = "") -> Figure:
        fig = Figure(section, name, None if value is None else round(float(value), 3), unit, note=note)
        self.figures.append(fig)
        print(f"  [{section}] {name}: {fig.value} {unit}  (load {fig.load[0]}) {note}", flush=True)
        return fig

    def save_json(self, stem: str) -> Path:
        OUT_DIR.mkdir(exist_ok=True)
        path = OUT_DIR / f"{stem}.json"
        doc = {"machine": self.machine, "figures": [asdict(f) for f in self.figures]}
        path.write_text(json.dumps(doc, indent=2))
        return path

    def markdown(self, title: str) -> str:
        m = self.machine
        lines = [
            f"## {title} ({m['date']})",
            "",
            f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GiB RAM, GPU: {m['gpu'] or 'none'}",
            f"- code: commit {m['commit']}; python {m['python']}, torch {m['torch']}, faiss {m['faiss']}",
            f"- load average at start (1/5/15 min): {' / '.join(map(str, m['load_at_start']))}",
            f"- command: `{m['command']}`",
            "",
        ]
        for section in dict.fromkeys(f.section for f in self.figures):
            lines += [f"### {section}", "", TABLE_HEAD, "|---|---:|---|---:|---|"]
            for f in self.figures:
                if f.section == section:
                    value = "pending" if f.value is None else f"{f.value:g}"
                    lines.append(f"| {f.name} | {value} | {f.unit} | {f.load[0]} | {f.note} |")
            lines.append("")
        return "\n".join(lines) + "\n"

    def append_markdown(self, title: str) -> None:
        if not RESULTS_MD.exists():
            RESULTS_MD.write_text("# Benchmark results\n\nEach run appends a section; newest last.\n\n")
        with RESULTS_MD.open("a") as f:
            f.write(self.markdown(title))
