"""The report as a list of blocks (headings, paragraphs, bullets, tables, plots), rendered to Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..results import markdown_grid


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # may hold `code` spans and **bold**


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: str = ""  # one of l/r per column; default: first column left, the rest right
    shaded: tuple[int, ...] = ()  # columns shown as "the study's", shaded in HTML

    @property
    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.headers) - 1)


@dataclass
class Plot:
    path: Path
    alt: str
    caption: str


Block = Heading | Para | Bullets | Table | Plot


def render_markdown(title: str, blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown; plots are linked by file name (the PNGs sit beside report.md)."""
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += [markdown_grid(block.headers, block.rows, block.alignment), ""]
        elif isinstance(block, Plot):
            out += [f"![{block.alt}]({block.path.name})", "", f"*{block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"
