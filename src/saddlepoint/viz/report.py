"""The HTML report: one self-contained page assembled from a run folder's log.

It reads only ``run.sqlite`` and the figure files it names (PNG and SVG embedded as data URIs),
so the page can be mailed or archived alone. Each section shows its text, its tables and its
figures. A few lines of inline script check on load that every image decoded and record the
count in ``<body data-images="loaded/total">`` (a broken one is reported on the console).
"""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
from pathlib import Path
from typing import Any

from saddlepoint.fileio import write_text
from saddlepoint.runlog import RUN_FILE, RunLog, Section, Table

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #eee; padding-bottom: .2em; }
nav ol { columns: 2; font-size: .95em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
figure { margin: 1em 0; overflow-x: auto; } figure img { max-width: 100%; border: 1px solid #eee; }
.more { color: #666; font-size: .9em; }
figcaption { font-size: .9em; color: #555; }
.meta { color: #666; font-size: .9em; }
"""

_CHECK = """
window.addEventListener('load', function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
    else { console.error('report: image failed to load: ' + images[i].alt); }
  }
  document.body.setAttribute('data-images', loaded + '/' + images.length);
});
"""

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


# How small the page draws its images (displayed width over natural width, the smallest), so a
# browser test can tell a readable grid from one shrunk until its captions are unreadable.
_MEASURE = """
window.addEventListener('load', function () {
  var smallest = 1;
  for (var i = 0; i < document.images.length; i++) {
    var image = document.images[i];
    if (image.naturalWidth > 0) {
      smallest = Math.min(smallest, image.getBoundingClientRect().width / image.naturalWidth);
    }
  }
  document.body.setAttribute('data-smallest-scale', smallest.toFixed(2));
});
"""


def format_cell(value: Any) -> str:
    """Numbers with sensible precision; everything else as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:.1f}"
    return str(value)


HTML_ROWS = 40  # a page shows this many rows of a table; the run log keeps them all


def _cell(value: Any) -> str:
    """A cell; numbers right-aligned in their column, text left-aligned."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    tag = '<td class="number">' if number else "<td>"
    return f"{tag}{html.escape(format_cell(value))}</td>"


def _table(table: Table, limit: int = HTML_ROWS) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows[:limit])
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    more = len(table.rows) - limit
    note = (
        f'<p class="more">{more:,} more rows in run.sqlite (table {html.escape(table.name)!s}; '
        "<code>saddlepoint report --markdown</code> or SQLite shows them all).</p>"
        if more > 0
        else ""
    )
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def figure_file(folder: Path, path: str) -> Path:
    """The figure ``path`` a run log names, which must lie inside the run folder: a log from
    elsewhere must not make a report embed or copy other local files."""
    root = folder.resolve()
    file = (root / path).resolve()
    if not file.is_relative_to(root):
        raise ValueError(
            f"{folder / RUN_FILE} names the figure {path!r}, which lies outside the run folder "
            f"{folder}; refused (a report only shows files of its own run)."
        )
    return file


def _figure(folder: Path, path: str, caption: str) -> str:
    file = figure_file(folder, path)
    mime = _MIME.get(file.suffix.lower())
    if mime is None:
        raise ValueError(f"Figure {path}: unsupported type; use PNG, SVG or JPEG.")
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    alt = html.escape(caption or file.name, quote=True)
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:{mime};base64,{data}" alt="{alt}">{text}</figure>'


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _section(folder: Path, section: Section, title: str = "") -> str:
    parts = [f'<section id="{html.escape(section.key, quote=True)}">']
    if section.title != title:  # a one-section page's title is already its heading
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
    parts.append(_paragraphs(section.text))
    parts.extend(_table(t) for t in section.tables)
    parts.extend(_figure(folder, path, caption) for path, caption in section.figures)
    if section.seconds:
        parts.append(f'<p class="meta">computed in {section.seconds:.1f} s</p>')
    parts.append("</section>")
    return "\n".join(parts)


def preface_html(markdown: str) -> str:
    """A preface written in a small Markdown subset -- '## ' headings, pipe tables, paragraphs
    -- as HTML (the seed-findings table that opens a seed run's report)."""
    parts: list[str] = []
    for block in markdown.strip().split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            parts.append(f"<h2>{html.escape(lines[0].lstrip('#').strip())}</h2>")
            lines = lines[1:]
            if not lines:
                continue
        if all(line.startswith("|") for line in lines):
            rows = [
                [cell.strip() for cell in line.strip("|").split("|")]
                for line in lines
                if not set(line) <= set("|-: ")
            ]
            head, *body = rows
            parts.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in body
                )
                + "</table>"
            )
        else:
            parts.append(f"<p>{html.escape(' '.join(lines))}</p>")
    return "".join(parts)


def render_report(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    title: str = "",
    preface: str = "",
) -> Path:
    """Write the report of the run in ``folder`` (default ``folder/report.html``); returns it.
    ``preface`` (Markdown: headings, pipe tables, paragraphs) goes before the sections."""
    folder = Path(folder)
    if not (folder / RUN_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} is not a run folder: it has no {RUN_FILE}. Run a study or `saddlepoint "
            "demo` with --out pointing there first."
        )
    target = Path(out) if out else folder / "report.html"
    check_report_output(folder, target)
    with RunLog(folder, readonly=True) as log:
        sections = log.sections()
        meta = log.meta()
    title = title or meta.get("title") or f"saddlepoint report: {folder.name}"
    contents = "".join(
        f'<li><a href="#{html.escape(s.key, quote=True)}">{html.escape(s.title)}</a></li>'
        for s in sections
    )
    lines = [f"{k}: {v}" for k, v in meta.items() if k != "title"]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
            f"<script>{_CHECK}</script><script>{_MEASURE}</script></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            "".join(f'<p class="meta">{html.escape(line)}</p>' for line in lines),
            preface_html(preface) if preface else "",
            _contents(contents, len(sections)),
            *(_section(folder, s, title) for s in sections),
            "</body></html>",
        ]
    )
    write_text(target, page)
    return target


def _contents(items: str, count: int) -> str:
    """A table of contents where there is something to choose between (two sections or more)."""
    if count == 0:
        return "<p>No sections recorded yet.</p>"
    return f"<nav><ol>{items}</ol></nav>" if count > 1 else ""


def check_report_output(folder: Path, target: Path) -> None:
    """Refuse a report path that would replace a file the report did not write: the run's log,
    a figure, a model, or any page that is not an earlier saddlepoint report."""
    if target.is_dir():
        raise ValueError(f"--out {target} is a folder; give the .html file to write.")
    if not target.exists():
        return
    if target.suffix.lower() in (".html", ".htm"):
        with open(target, "rb") as handle:
            if _CHECK.strip().encode() in handle.read(1 << 16):  # every page we write has it
                return
    raise ValueError(
        f"--out {target} already exists and is not an earlier saddlepoint report; a report "
        "never replaces a file it did not write (pick a new .html path)."
    )


def _markdown_table(table: Table, limit: int) -> list[str]:
    rows = table.rows[:limit]
    lines = [f"*{table.caption}*", ""] if table.caption else []
    lines.append("| " + " | ".join(str(c) for c in table.columns) + " |")
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    if len(table.rows) > limit:
        lines.append(f"\n({len(table.rows) - limit} more rows in run.sqlite)")
    return [*lines, ""]


_WRITTEN = "<!-- saddlepoint report wrote these figures: {} -->"


def _earlier_figures(page: Path, heading: str) -> set[str] | None:
    """The figures an earlier render wrote into the page's folder (listed at the page's end);
    an empty set for a page of this run from before that list existed; None when the page
    exists and is not ours (nothing may replace it)."""
    if not page.exists():
        return set()
    lines = page.read_text(encoding="utf-8", errors="replace").splitlines()
    prefix, _, suffix = _WRITTEN.partition("{}")
    for line in reversed(lines):
        if line.startswith(prefix) and line.endswith(suffix):
            return set(line[len(prefix) : -len(suffix)].split())
    return set() if lines and lines[0] == heading else None


def render_markdown(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    max_rows: int = 30,
    preface: str = "",
) -> Path:
    """Write the run in ``folder`` as Markdown (``out/README.md``, figures copied beside it):
    for documentation folders, where a page should diff well and images stay files.
    ``preface`` (Markdown) goes after the header, before the sections. The page lists the
    figures it wrote; images an earlier render wrote and this one does not draw are removed,
    and nothing else in ``out`` is replaced or removed (a README.md or an image of another
    origin is refused)."""
    folder, out = Path(folder), Path(out)
    if not (folder / RUN_FILE).is_file():
        raise FileNotFoundError(f"{folder} is not a run folder: it has no {RUN_FILE}.")
    if out.resolve() == folder.resolve():
        raise ValueError(f"--markdown {out} is the run folder itself; give another folder.")
    with RunLog(folder, readonly=True) as log:
        sections = log.sections()
        meta = log.meta()
    heading = f"# {meta.get('title') or folder.name}"
    page = out / "README.md"
    earlier = _earlier_figures(page, heading)
    if earlier is None:
        raise ValueError(
            f"--markdown {out}: {page} exists and was not written by a report of this run; "
            "nothing is replaced that the report did not write (pick another folder)."
        )
    figures = {
        Path(path).name: figure_file(folder, path) for s in sections for path, _ in s.figures
    }
    for name, source in figures.items():
        target = out / "figures" / name
        if target.exists() and name not in earlier and target.read_bytes() != source.read_bytes():
            raise ValueError(
                f"--markdown {out}: {target} exists and was not written by this report; "
                "nothing is replaced that the report did not write (pick another folder)."
            )
    lines = [heading, ""]
    lines += [f"{k}: {v}  " for k, v in meta.items() if k != "title"] + [""]
    if preface:
        lines += [preface.strip(), ""]
    for section in sections:
        lines += [f"## {section.title}", "", section.text, ""]
        for table in section.tables:
            lines += _markdown_table(table, max_rows)
        for path, caption in section.figures:
            name = Path(path).name
            lines += [f"![{caption or name}](figures/{name})", ""]
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, source in figures.items():
        shutil.copyfile(source, out / "figures" / name)
    for stale in earlier - set(figures):
        if "/" not in stale and (out / "figures" / stale).is_file():
            (out / "figures" / stale).unlink()
    lines.append(_WRITTEN.format(" ".join(sorted(figures))))
    write_text(page, "\n".join(lines) + "\n")
    return page
