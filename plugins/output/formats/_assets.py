"""The HTML report's stylesheet and script, inlined into every page.

The page's Content-Security-Policy admits exactly these two blocks by their SHA-256
(``csp``): even if a target string ever escaped its escaping, the browser would run no
script and load nothing from the network.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0; background: var(--bg); }
header, section, footer { max-width: 1200px; margin: 0 auto; padding: 12px 24px; }
header h1 { margin: 16px 0 4px; font-size: 22px; }
h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.muted, footer { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px;
        min-width: 120px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: 6px 0 14px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; text-align: left; vertical-align: top; }
td.banner, td.detail { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
                       word-break: break-all; max-width: 360px; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button::after { content: " \\2195"; color: #aab; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--fg); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--fg); }
.sev { display: inline-block; border-radius: 4px; padding: 0 6px; font-weight: 600; }
.sev-critical { background: #7a0010; color: #fff; } .sev-high { background: #d2302c; color: #fff; }
.sev-medium { background: #f0a020; } .sev-low { background: #f3dc6b; } .sev-info { background: #cfe0f3; }
.drawing { overflow: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2330; }
svg text.mt, svg text.tick, svg text.notrun { fill: #5b6475; font-size: 11px; }
svg text.label { text-anchor: end; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; border: 1px solid #445;
            vertical-align: -2px; margin-right: 4px; }
.st-completed { background: #8fd18f; } .st-failed { background: #ef8a8a; }
.st-cancelled { background: #f2d16b; } .st-skipped { background: #d0d0d0; }
.st-running { background: #8ec1ef; } .st-pending { background: #fff; }
.note { color: var(--muted); font-style: italic; }
.kev { display: inline-block; border-radius: 4px; padding: 0 5px; margin-left: 6px; font-size: 11px;
       font-weight: 700; background: #5a1a8a; color: #fff; }
tr.unverified td { color: #8a90a0; background: #f1f2f4; }
"""

# Sorts a table.sortable by the clicked column: by a cell's data-key when it has one
# (addresses, numbers), else by its text; a second click reverses.
JS = """
(function () {
  "use strict";
  function keyOf(cell) {
    var k = cell.getAttribute("data-key");
    return k !== null ? k : cell.textContent.trim().toLowerCase();
  }
  function compare(a, b, numeric) {
    if (numeric) { return (parseFloat(a) || 0) - (parseFloat(b) || 0); }
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function sortBy(table, heads, th, col) {
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var c = compare(keyOf(r1.cells[col]), keyOf(r2.cells[col]), numeric);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(table, heads, th, col); }); }
    });
  });
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def csp() -> str:
    """Nothing from the network; only this page's own style block and script."""
    return (f"default-src 'none'; style-src {_sha256(CSS)}; script-src {_sha256(JS)}; "
            "img-src data:; base-uri 'none'; form-action 'none'")
