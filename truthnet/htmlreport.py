"""One self-contained HTML file for a scan: summary, a sortable table, face-crop thumbnails.

Every string that comes from a file name or a reason is escaped; thumbnails are inline
``data:`` URIs, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections import Counter
from pathlib import Path

from .store import ResultRow

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} .muted{color:#777}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:middle}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0} th:hover{background:#e8e8e8}
.fake{color:#b00020;font-weight:600} .real{color:#1b7f3b;font-weight:600} .fail{color:#a36200}
.cards span{display:inline-block;margin-right:1.5em;font-size:1.1em}
img.strip{height:40px;image-rendering:auto}
.warn{background:#fff3cd;border:2px solid #b36b00;padding:.6em 1em;margin:1em 0;color:#5c3b00}
.warn strong{color:#b00020}
"""

_JS = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const tb = th.closest('table').tBodies[0];
  const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  const key = r => { const c = r.cells[col]; const v = c.dataset.v ?? c.textContent;
                     const n = parseFloat(v); return isNaN(n) ? v.toLowerCase() : n; };
  [...tb.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach(r => tb.appendChild(r));
}));
"""


def card_banner(card: dict | None) -> str:
    """The model card line, and its warnings as a banner above the verdicts (``card``: what
    :meth:`truthnet.modelcard.ModelCard.stored` gives, as kept with each scan)."""
    e = html.escape
    if not card:
        return ""
    out = f"<p class='muted'>model card: {e(str(card.get('summary') or '-'))}</p>"
    warnings = card.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in warnings)
        out = (f"<div class='warn' id='model-warnings'><strong>&#9888; Do not take these verdicts at face value:"
               f"</strong><ul>{items}</ul></div>") + out
    return out


def render_html(rows: list[ResultRow], *, title: str = "TruthNet scan", scan: dict | None = None,
                card: dict | None = None) -> str:
    """``card``: the model card to show (default: the one stored with ``scan``)."""
    e = html.escape
    counts = Counter(r.status for r in rows)
    labels = Counter(r.label for r in rows if r.label)
    failed = sum(n for s, n in counts.items() if s != "ok")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if scan:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(scan.get("started") or 0))
        parts.append(
            f"<p class='muted'>scan #{e(str(scan.get('id')))} &middot; {e(started)} &middot; "
            f"model {e(str(scan.get('model') or '-'))} &middot; state {e(str(scan.get('state')))}</p>"
        )
    parts.append(card_banner(card if card is not None else (scan or {}).get("model_card")))
    parts.append(
        "<p class='cards'>"
        f"<span>{len(rows)} files</span><span class='fake'>{labels.get('fake', 0)} fake</span>"
        f"<span class='real'>{labels.get('real', 0)} real</span><span class='fail'>{failed} not scored</span></p>"
    )
    if failed:
        parts.append(
            "<p class='muted'>"
            + ", ".join(f"{e(s)}: {n}" for s, n in sorted(counts.items()) if s != "ok")
            + "</p>"
        )
    parts.append(
        "<table><thead><tr><th>file</th><th>verdict</th><th>score</th><th>status</th><th>reason</th>"
        "<th>faces/frames</th><th>duration (s)</th><th>face crops</th></tr></thead><tbody>"
    )
    for r in rows:
        verdict = r.label or "-"
        cls = r.label if r.label else "fail"
        score = "" if r.score is None else f"{r.score:.4f}"
        faces = "-" if r.faces_found is None else f"{sum(1 for f in r.faces_found if f)}/{len(r.faces_found)}"
        img = ""
        if r.thumbs:
            b64 = base64.b64encode(r.thumbs).decode()
            img = f"<img class='strip' alt='face crops' src='data:image/jpeg;base64,{b64}'>"
        dur = "" if r.duration is None else f"{r.duration:.1f}"
        windows = ""
        if r.window_scores:
            windows = " <span class='muted'>(" + ", ".join(f"{w:.2f}" for w in r.window_scores) + ")</span>"
        parts.append(
            f"<tr><td title='{e(r.path)}'>{e(os.path.basename(r.path))}</td>"
            f"<td class='{e(cls)}'>{e(verdict)}</td><td data-v='{score or -1}'>{score}{windows}</td>"
            f"<td>{e(r.status)}</td><td>{e(r.reason or '')}</td><td>{faces}</td><td>{dur}</td><td>{img}</td></tr>"
        )
    parts.append(f"</tbody></table><script>{_JS}</script></body></html>")
    return "".join(parts)


def write_html(rows: list[ResultRow], path: str | os.PathLike, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(rows, **kw), encoding="utf-8")
    return path


CSV_FIELDS = [
    "path", "status", "reason", "score", "label", "threshold", "size", "fingerprint", "duration",
    "frames_sampled", "faces_found", "window_scores", "scan_id", "scanned_at",
]


def write_csv(rows: list[ResultRow], path: str | os.PathLike) -> Path:
    import csv
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            d = r.to_dict()
            d["faces_found"] = "" if r.faces_found is None else json.dumps(r.faces_found)
            d["window_scores"] = "" if r.window_scores is None else json.dumps(r.window_scores)
            w.writerow(d)
    return path
