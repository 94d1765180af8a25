"""Small helpers to write inline SVG by hand: escaped text and attributes, a document."""

from __future__ import annotations

from html import escape


def attrs(**values: object) -> str:
    """``key="value"`` pairs, escaped; ``data_x`` becomes ``data-x``; ``None`` is left out."""
    return " ".join(
        f'{key.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
        for key, value in values.items()
        if value is not None
    )


def text(x: float, y: float, content: str, css: str, tip: str = "", **extra: object) -> str:
    """A ``<text>`` element holding ``content`` (escaped), with ``tip`` shown on hover."""
    inner = (title(tip) if tip else "") + escape(content)
    return f"<text {attrs(x=_n(x), y=_n(y), class_=css, **extra)}>{inner}</text>"


def rect(
    x: float, y: float, width: float, height: float, css: str, tip: str = "", **extra: object
) -> str:
    """A ``<rect>``, with ``tip`` shown on hover (an SVG ``<title>``)."""
    size = attrs(
        x=_n(x), y=_n(y), width=_n(max(width, 0.0)), height=_n(height), class_=css, **extra
    )
    return f"<rect {size}>{title(tip)}</rect>" if tip else f"<rect {size}/>"


def title(tip: str) -> str:
    """The hover text of its parent element."""
    return f"<title>{escape(tip)}</title>"


def document(width: float, height: float, css: str, body: list[str], label: str) -> str:
    """A standalone ``<svg>`` with its own style sheet, usable inline or on its own."""
    size = attrs(
        xmlns="http://www.w3.org/2000/svg",
        width=_n(width),
        height=_n(height),
        viewBox=f"0 0 {_n(width)} {_n(height)}",
        role="img",
        aria_label=label,
    )
    return f"<svg {size}><style>{css}</style>{''.join(body)}</svg>"


def _n(value: float) -> str:
    """A coordinate, short: SVGs of thousands of bars stay small."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
