import os
import shutil
import subprocess

import pytest

from saddlepoint.runlog import RunLog, Section, Table
from saddlepoint.viz.report import format_cell, render_markdown, render_report
from saddlepoint.viz.style import plt, save_figure


def make_run(folder):
    with RunLog(folder) as log:
        log.set_meta("title", "A <test> run")
        section = Section("first", "First section", "Setup & numbers.\n\nSecond paragraph.")
        section.tables.append(
            Table("t", ["name", "accuracy"], [["pgd <40>", 0.12345], ["fgsm", 1]])
        )
        for name in ("a.png", "b.svg"):
            path = log.figure_path(name)
            fig, ax = plt.subplots()
            ax.plot([0, 1], [1, 0])
            save_figure(fig, path)
            section.figures.append((f"figures/{name}", f"figure {name}"))
        log.add(section)
        log.add(Section("second", "Second section", "Only text."))
    return folder


def test_report_is_self_contained_and_escaped(tmp_path):
    page = render_report(make_run(tmp_path)).read_text()
    assert page.count("<img ") == 2 and page.count('src="data:image/') == 2
    assert "http://" not in page and "https://" not in page and "figures/a.png" not in page
    assert "A &lt;test&gt; run" in page and "pgd &lt;40&gt;" in page and "0.1235" in page
    assert page.index("First section") < page.index("Second section")
    assert "Setup &amp; numbers." in page


def test_markdown_rendering(tmp_path):
    (tmp_path / "doc" / "figures").mkdir(parents=True)
    (tmp_path / "doc" / "figures" / "mine.png").write_bytes(b"an image the user put there")
    (tmp_path / "doc" / "figures" / "notes.txt").write_text("not ours")
    run = make_run(tmp_path / "run")
    out = render_markdown(run, tmp_path / "doc")
    text = out.read_text()
    assert "# A <test> run" in text and "## First section" in text
    assert "| pgd <40> | 0.1235 |" in text and "![figure a.png](figures/a.png)" in text
    assert (tmp_path / "doc" / "figures" / "b.svg").is_file()
    with RunLog(run) as log:  # the run no longer draws b.svg
        log.add(Section("first", "First section", figures=[("figures/a.png", "figure a.png")]))
    render_markdown(run, tmp_path / "doc")
    assert not (tmp_path / "doc" / "figures" / "b.svg").exists()  # an earlier render wrote it
    assert (tmp_path / "doc" / "figures" / "mine.png").is_file()  # the report never wrote it
    assert (tmp_path / "doc" / "figures" / "notes.txt").is_file()


def test_sections_replace_and_resume(tmp_path):
    with RunLog(tmp_path) as log:
        log.add(Section("k", "Old", params={"a": 1}))
        log.add(Section("j", "Other"))
        assert log.done("k", {"a": 1}) and not log.done("k", {"a": 2}) and not log.done("z")
        log.add(Section("k", "New", params={"a": 2}))
        assert [s.title for s in log.sections()] == ["New", "Other"]  # keeps its place
        with pytest.raises(FileNotFoundError, match="missing figure"):
            log.add(Section("bad", "Bad", figures=[("figures/none.png", "")]))
        assert [s.key for s in log.sections()] == ["k", "j"]


def test_cells_and_errors(tmp_path):
    assert format_cell(0.5) == "0.5" and format_cell(1e-5) == "1e-05"
    assert format_cell(123456) == "123,456" and format_cell(True) == "True"
    with pytest.raises(FileNotFoundError, match="no run.sqlite"):
        render_report(tmp_path / "nothing")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _add_grid(folder):
    """A real adversarial grid (four images, two to a row) as the run's third figure."""
    import torch
    from torch import nn

    from saddlepoint.attacks import build_attack
    from saddlepoint.viz.grids import adversarial_grid

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(8, 1, 8, 8)
    y = model(x).argmax(1)  # every image classified "correctly"
    with RunLog(folder) as log:
        path = log.figure_path("grid.png")
        adversarial_grid(build_attack("fgsm", eps=0.3)(model, x, y), path, count=4)
        log.add(Section("grid", "Grid", figures=[("figures/grid.png", "an FGSM grid")]))


def test_report_loads_in_headless_chromium(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("SADDLEPOINT_REQUIRE_BROWSER") == "1":  # set by `make test`
            pytest.fail("chromium is missing; `make browser` installs Debian's chromium")
        pytest.skip("needs Debian's chromium (`make test` installs it)")
    run = make_run(tmp_path / "run")
    _add_grid(run)
    report = render_report(run)
    command = [
        CHROMIUM,
        "--headless",
        "--window-size=1280,900",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        report.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-images="3/3"' in done.stdout  # the page's own check: every image decoded
    scale = float(done.stdout.split('data-smallest-scale="')[1].split('"')[0])
    assert scale >= 0.6  # the grid is drawn at a size whose captions can be read
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_preface_opens_the_report_and_the_page(tmp_path):
    """The seed-findings table: a Markdown preface in both the HTML report and the docs page."""
    from saddlepoint.runlog import RunLog, Section, Table
    from saddlepoint.viz.report import render_markdown, render_report

    with RunLog(tmp_path / "run") as log:
        log.add(Section(key="s", title="S", text="t", params={}, tables=[Table("x", ["a"], [[1]])]))
    preface = "## Seed findings\n\n| claim | seed | ours |\n|---|---|---|\n| FGSM | 29% | 31% |\n\nWhy: <b>x</b>."
    page = render_report(tmp_path / "run", preface=preface).read_text()
    assert "<h2>Seed findings</h2>" in page and "<td>29%</td>" in page
    assert "&lt;b&gt;" in page and "<b>x" not in page  # escaped, never raw HTML
    assert page.index("Seed findings") < page.index('<section id="s">')
    assert "<nav>" not in page  # one section: nothing to choose between
    text = render_markdown(tmp_path / "run", tmp_path / "md", preface=preface).read_text()
    assert text.index("| FGSM | 29% | 31% |") < text.index("## S\n")


def test_long_tables_are_cut_numbers_align_right_and_a_card_page_has_one_title(tmp_path):
    from saddlepoint.runlog import RunLog, Section, Table
    from saddlepoint.viz.report import HTML_ROWS

    rows = [[f"config {i}", i / 100] for i in range(96)]
    with RunLog(tmp_path / "run") as log:
        log.add(
            Section("card", "Robustness card: m", tables=[Table("grid", ["name", "acc"], rows)])
        )
    page = render_report(tmp_path / "run", title="Robustness card: m").read_text()
    assert page.count("<tr>") == HTML_ROWS + 1  # the header and the first rows
    assert f"{96 - HTML_ROWS} more rows in run.sqlite" in page
    assert '<td>config 0</td><td class="number">0</td>' in page  # text left, numbers right
    assert page.count("Robustness card: m</h") == 1  # one heading, not h1 and h2 alike
    assert "<nav>" not in page  # no one-entry table of contents
