"""The pages' look: one small inline style sheet, so a report opens from disk alone."""

from __future__ import annotations

from html import escape

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f5f7;position:sticky;top:0}
.pf-facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px}
.pf-facts dt{font-weight:600}.pf-facts dd{margin:0}
.pf-computed{color:#2a5d8f}.pf-cached{color:#2f7d32}.pf-failed{color:#c62828;font-weight:600}.pf-skipped{color:#888}
tr.pf-row-failed td{background:#fff3f3}
.pf-scroll{overflow:auto;max-height:70vh;border:1px solid #eee}
.pf-error pre{max-width:70em;white-space:pre-wrap;font-size:12px}
.pf-reportable{border:1px solid #ddd;padding:4px 10px;margin:8px 0;display:inline-block}
.pf-group{font-weight:normal;color:#666;font-size:.85em}
nav a{margin-right:1em}
"""


_HEAD = "<head><meta charset='utf-8'>"


def page(title: str, body: str) -> str:
    """A complete HTML page: nothing in it is fetched from anywhere."""
    return (
        f"<!DOCTYPE html><html lang='en'>{_HEAD}"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def based_at(html: str, href: str) -> str:
    """A :func:`page` whose relative links resolve from ``href``: a copy shown from
    another folder still finds its files."""
    return html.replace(_HEAD, f"{_HEAD}<base href='{escape(href)}'>", 1)
