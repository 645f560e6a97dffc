"""The demo's report: report.md (pictures beside it, by relative path) and report.html, one self-contained
file (styles inline, every picture a data: URI) that opens anywhere without the run folder."""

from __future__ import annotations

import base64
import html
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from nanofm.version import __version__

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } img { max-width: 100%; border: 1px solid #eee; }
code, pre { background: #f6f6f6; } pre { padding: .5rem; overflow-x: auto; }
"""


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on: processor, cores, accelerator, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [("processor", cpu), ("cores (torch threads)", f"{os.cpu_count()} ({torch.get_num_threads()})"),
            ("accelerator", gpu), ("system", platform.platform()), ("python", sys.version.split()[0]),
            ("torch", torch.__version__), ("nanofm", __version__), ("date", time.strftime("%Y-%m-%d %H:%M %Z"))]


def clock(seconds: float) -> str:
    """1:05 (minutes:seconds) or 1:02:05."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def build_markdown(out: Path, parts: list[tuple[str, str]], state: dict, preface: str = "") -> str:
    done = state.get("parts", {})
    lines = ["# nanofm: the lecture end to end", "",
             "Foundation models at laptop scale, all on one Transformer core: translation (the RNN with attention "
             "against the Transformer), Spanish BERT pretraining and fine-tuning in a BETO-style table, the Vision "
             "Transformer with and without masked-autoencoder pretraining, and text to image (CLIP, a diffusion prior "
             "and a diffusion decoder, as in DALL-E 2). Every figure below was measured in this run, "
             f"preset `{state.get('preset', '?')}`.", "", *([preface, ""] if preface else []),
             "## Machine and versions", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine()]
    lines += ["", "## Time of each part", "", "| part | budget | time | of its budget | status |", "|---|---:|---:|---:|---|"]
    total = 0.0
    for name, title in parts:
        p = done.get(name)
        if p is None:
            lines.append(f"| {title} | - | - | - | not run |")
            continue
        total += p.get("seconds", 0.0)
        status = "done" if p.get("done") else "interrupted: rerun the demo to resume it"
        used = f"{100 * p['seconds'] / p['budget_s']:.0f}%" if p.get("done") and p.get("budget_s") else "-"
        lines.append(f"| {title} | {clock(p.get('budget_s', 0))} | {clock(p['seconds']) if p.get('done') else '-'} "
                     f"| {used} | {status} |")
    budget = state.get("budget_s")
    lines += [f"| all | {clock(budget) if budget else ''} | {clock(total)} "
              f"| {f'{100 * total / budget:.0f}%' if budget else ''} | |", ""]
    for name, title in parts:
        section = out / name / "section.md"
        if done.get(name, {}).get("done") and section.is_file():
            lines += [f"## {title}", "", section.read_text().strip(), ""]
    return "\n".join(lines) + "\n"


def _inline_images(body: str, base: Path) -> str:
    """<img src="a/b.png"> -> <img src="data:image/png;base64,...">: the HTML needs nothing beside it."""
    def inline(m: re.Match) -> str:
        path = base / html.unescape(m.group(2))
        if not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'{m.group(1)}data:image/png;base64,{data}"'

    return re.sub(r'(<img[^>]*?src=")([^":]+)"', inline, body)


def write_report(out: str | Path, parts: list[tuple[str, str]], state: dict, preface: str = "") -> Path:
    """Write out/report.md and out/report.html (preface: Markdown put first, after the introduction); the HTML's path."""
    import markdown

    out = Path(out)
    text = build_markdown(out, parts, state, preface)
    (out / "report.md").write_text(text, encoding="utf-8")
    body = _inline_images(markdown.markdown(text, extensions=["tables"]), out)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>nanofm demo report</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
    tmp = out / "report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out / "report.html")
    return out / "report.html"
