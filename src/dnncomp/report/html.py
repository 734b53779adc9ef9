"""The self-contained HTML page: the report's blocks through a Jinja2 template, PNGs embedded as data URIs."""

from __future__ import annotations

import base64
import re
from typing import Any

from ..errors import MissingDependencyError
from .document import Block, Bullets, Heading, Para, Plot, Table

TEMPLATE = "report.html.j2"


def _inline(text: str):
    """Escape, then the two inline marks the report uses: `code` and **bold**."""
    from markupsafe import Markup, escape

    escaped = str(escape(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped))


def _context(block: Block) -> dict[str, Any]:
    if isinstance(block, Heading):
        return {"kind": "heading", "level": block.level, "text": block.text}
    if isinstance(block, Para):
        return {"kind": "para", "text": block.text}
    if isinstance(block, Bullets):
        return {"kind": "bullets", "entries": block.items}
    if isinstance(block, Table):
        classes = [a + (" study" if i in block.shaded else "") for i, a in enumerate(block.alignment)]
        return {"kind": "table", "headers": block.headers, "rows": block.rows, "classes": classes}
    assert isinstance(block, Plot)
    return {
        "kind": "plot",
        "alt": block.alt,
        "caption": block.caption,
        "data": base64.b64encode(block.path.read_bytes()).decode("ascii"),
    }


def render_html(title: str, blocks: list[Block]) -> str:
    """One HTML page with no external resources. Raises MissingDependencyError without Jinja2."""
    try:
        import jinja2
    except ImportError as exc:
        raise MissingDependencyError(
            "the HTML report needs Jinja2: pip install 'dnncomp[report]' (or: pip install jinja2)"
        ) from exc
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("dnncomp.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["inline"] = _inline
    return environment.get_template(TEMPLATE).render(title=title, blocks=[_context(b) for b in blocks])
