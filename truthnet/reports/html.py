"""One self-contained HTML file for a scan, and the CSV export.

The HTML report states what it needs to hold up (scanned roots, model file hash, threshold,
TruthNet version, date), groups files by folder relative to the scanned root, and shows each
video's face crops with the sampled frames' times (a click enlarges them).  Every string that
comes from a file name or a reason is escaped; CSS, script and thumbnails (``data:`` URIs) are
inline, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections import Counter
from pathlib import Path

from ..paths import folder_of, one_line, shown, text
from ..store import Result

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.05em;margin:1.6em 0 .4em;font-family:ui-monospace,monospace}
.muted{color:#777} dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;font-size:.9em}
dl.facts dt{color:#555} dl.facts dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:middle}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0} th:hover{background:#e8e8e8}
.fake{color:#b00020;font-weight:600} .real{color:#1b7f3b;font-weight:600} .fail{color:#a36200}
.cards span{display:inline-block;margin-right:1.5em;font-size:1.1em}
img.strip{height:40px;cursor:zoom-in}
#zoom{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:9;cursor:zoom-out;
      flex-direction:column;align-items:center;justify-content:center;color:#eee}
#zoom.on{display:flex} #zoom img{width:96vw;max-height:80vh;object-fit:contain;image-rendering:pixelated}
#zoom p{font-family:ui-monospace,monospace;max-width:96vw}
.warn{background:#fff3cd;border:2px solid #b36b00;padding:.6em 1em;margin:1em 0;color:#5c3b00}
.warn strong{color:#b00020}
"""

# Sorting keeps rows without a value (unscored files) last in both directions; a click on a
# crop strip shows it across the window with its frame times.
_JS = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const tb = th.closest('table').tBodies[0];
  const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  const key = r => { const c = r.cells[col]; const v = c.dataset.v ?? c.textContent.trim();
                     if (v === '') return null; const n = Number(v); return isNaN(n) ? v.toLowerCase() : n; };
  [...tb.rows].sort((a, b) => { const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); })
    .forEach(r => tb.appendChild(r));
}));
const zoom = document.getElementById('zoom');
document.querySelectorAll('img.strip').forEach(img => img.addEventListener('click', () => {
  zoom.querySelector('img').src = img.src;
  zoom.querySelector('p').textContent = img.dataset.caption || '';
  zoom.classList.add('on');
}));
zoom.addEventListener('click', () => zoom.classList.remove('on'));
document.addEventListener('keydown', e => { if (e.key === 'Escape') zoom.classList.remove('on'); });
"""


def _facts(rows: list[Result], scan: dict | None, roots: list[str]) -> list[tuple[str, str]]:
    """What the report must state to hold up: where, with what, when."""
    from .. import __version__

    scan = scan or {}
    info = scan.get("info") or {}
    thresholds = sorted({r.threshold for r in rows if r.threshold is not None})
    fmt = "%Y-%m-%d %H:%M:%S %Z"
    started = scan.get("started") or min((r.scanned_at for r in rows if r.scanned_at), default=None)
    facts = [
        ("scanned roots", "\n".join(roots) or "-"),
        ("scan", f"#{scan['id']} ({scan.get('state')})" if scan.get("id") else "-"),
        ("scanned", time.strftime(fmt, time.localtime(started)) if started else "-"),
        ("report written", time.strftime(fmt)),
        ("model file", str(scan.get("model") or "-")),
        ("model SHA-256", str(info.get("model_sha256") or "-")),
        ("threshold", ", ".join(f"{t:.4g}" for t in thresholds) or str(info.get("threshold", "-"))),
        ("TruthNet", f"{info.get('truthnet_version') or '-'} (scan); {__version__} (this report)"),
    ]
    if info.get("windows", 1) > 1:
        facts.append(("windows per video", str(info["windows"])))
    return facts


def _escape(value) -> str:
    """HTML text of ``value``: any bytes of a file name as ``\\xNN``, control characters escaped."""
    return html.escape(one_line(str(value)))


def card_banner(card: dict | None) -> str:
    """The model card line, and its warnings as a banner above the verdicts (``card``: what
    :meth:`truthnet.modelcard.ModelCard.stored` gives, as kept with each scan)."""
    e = _escape
    if not card:
        return ""
    out = f"<p class='muted'>model card: {e(str(card.get('summary') or '-'))}</p>"
    warnings = card.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in warnings)
        out = (f"<div class='warn' id='model-warnings'><strong>&#9888; Do not take these verdicts at face value:"
               f"</strong><ul>{items}</ul></div>") + out
    return out


def _row_html(r: Result, roots: list[str], why: bytes | None = None) -> str:
    e = _escape
    verdict = r.label or "-"
    cls = r.label if r.label else "fail"
    score = "" if r.score is None else f"{r.score:.4f}"
    faces = "-" if r.faces_found is None else f"{sum(1 for f in r.faces_found if f)}/{len(r.faces_found)}"
    times = r.frame_times()
    when = "" if not times else ", ".join(f"{t:.2f}" for t in times)
    img = ""
    if r.thumbs:
        b64 = base64.b64encode(r.thumbs).decode()
        caption = f"{shown(r.path, roots)} - frames at {when} s" if when else shown(r.path, roots)
        img = (f"<img class='strip' alt='face crops' title='click to enlarge' data-caption='{e(caption)}' "
               f"src='data:image/jpeg;base64,{b64}'>")
    if why:  # `truthnet explain` kept an explanation of these very bytes by this model
        img += (f"<br><img class='strip' alt='explanation' title='why: each frame&#39;s part in the score and a heat map per face' "
                f"data-caption='{e(shown(r.path, roots))} - explanation (truthnet explain)' "
                f"src='data:image/png;base64,{base64.b64encode(why).decode()}'>")
    dur = "" if r.duration is None else f"{r.duration:.1f}"
    windows = ""
    if r.window_scores:
        windows = " <span class='muted'>(" + ", ".join(f"{w:.2f}" for w in r.window_scores) + ")</span>"
    return (
        f"<tr><td title='{e(r.path)}'>{e(os.path.basename(r.path))}</td>"
        f"<td class='{e(cls)}'>{e(verdict)}</td><td data-v='{score}'>{score}{windows}</td>"
        f"<td>{e(r.status)}</td><td>{e(r.reason or '')}</td><td>{faces}</td><td>{dur}</td>"
        f"<td class='muted'>{e(when)}</td><td>{img}</td></tr>"
    )


def render_html(rows: list[Result], *, title: str = "TruthNet scan", scan: dict | None = None,
                roots: list[str] | None = None, card: dict | None = None,
                explanations: dict[tuple[str, str], bytes] | None = None) -> str:
    """The report: facts (roots, model hash, threshold, versions, date), the model card and its
    warnings (``card``, default: the one stored with ``scan``), counts, then one sortable table
    per folder, paths relative to the scanned root.  ``explanations``: the PNG of ``truthnet
    explain`` per (file SHA-256, model key), shown under that file's face crops."""
    explanations = explanations or {}
    e = _escape
    roots = list(roots or (scan or {}).get("roots") or [])
    counts = Counter(r.status for r in rows)
    labels = Counter(r.label for r in rows if r.label)
    failed = sum(n for s, n in counts.items() if s != "ok")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1><dl class='facts'>",
    ]
    for k, v in _facts(rows, scan, roots):
        parts.append(f"<dt>{e(k)}</dt><dd>{'<br>'.join(e(line) for line in text(v).split(chr(10)))}</dd>")
    parts.append("</dl>")
    # the model card's summary, and its warnings as a banner nobody can miss
    parts.append(card_banner(card if card is not None else (scan or {}).get("model_card")))
    parts.append(
        "<p class='cards'>"
        f"<span>{len(rows)} files</span><span class='fake'>{labels.get('fake', 0)} fake</span>"
        f"<span class='real'>{labels.get('real', 0)} real</span><span class='fail'>{failed} not scored</span></p>"
    )
    if failed:
        parts.append("<p class='muted'>" + ", ".join(f"{e(s)}: {n}" for s, n in sorted(counts.items()) if s != "ok")
                     + "</p>")
    groups: dict[str, list[Result]] = {}
    for r in sorted(rows, key=lambda r: shown(r.path, roots)):
        groups.setdefault(folder_of(r.path, roots), []).append(r)
    for folder, members in groups.items():
        parts.append(f"<h2>{e(folder)}/ <span class='muted'>({len(members)})</span></h2>")
        parts.append(
            "<table><thead><tr><th>file</th><th>verdict</th><th>score</th><th>status</th><th>reason</th>"
            "<th>faces/frames</th><th>duration (s)</th><th>frame times (s)</th><th>face crops</th></tr></thead><tbody>"
        )
        parts.extend(_row_html(r, roots, explanations.get((r.sha256, r.model_key))) for r in members)
        parts.append("</tbody></table>")
    parts.append(f"<div id='zoom'><img alt='face crops, enlarged'><p></p></div><script>{_JS}</script></body></html>")
    return "".join(parts)


def write_html(rows: list[Result], path: str | os.PathLike, *, store=None, **kw) -> Path:
    """:func:`render_html` to ``path`` (atomically); ``store``: show the explanations it keeps."""
    from .files import write_atomically

    if store is not None:
        kw.setdefault("explanations", store.explanation_pngs(rows))
    page = render_html(rows, **kw)
    return write_atomically(path, lambda fh: fh.write(page))


CSV_FIELDS = [
    "file", "path", "status", "reason", "score", "label", "threshold", "size", "sha256", "frames_sha256", "duration",
    "frames_sampled", "frame_times", "faces_found", "window_scores", "scan_id", "scanned_at",
    "model", "model_sha256",
]


def write_csv(rows: list[Result], path: str | os.PathLike, *, scan: dict | None = None,
              roots: list[str] | None = None) -> Path:
    """One row per file: ``file`` relative to the scanned root (as the HTML report and the TUI
    show it), ``path`` absolute, ``frame_times`` the sampled frames' seconds."""
    import csv
    import json

    from .files import csv_cell, write_atomically

    roots = list(roots or (scan or {}).get("roots") or [])
    model = {"model": (scan or {}).get("model") or "", "model_sha256": ((scan or {}).get("info") or {}).get("model_sha256") or ""}

    def write(fh) -> None:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            d = r.to_dict()
            d["file"] = shown(r.path, roots)
            d["faces_found"] = "" if r.faces_found is None else json.dumps(r.faces_found)
            d["window_scores"] = "" if r.window_scores is None else json.dumps(r.window_scores)
            times = r.frame_times()
            d["frame_times"] = "" if times is None else json.dumps(times)
            d.update(model)  # every row names the model that gave its verdict
            w.writerow({k: csv_cell(v) for k, v in d.items()})

    return write_atomically(path, write)
