"""The benchmark scripts run (tiny sizes, --quick) and print their table; no timing is asserted. Each run is
recorded under bench/results/ (here: a temporary folder). The figures the README quotes from bench/results/
are the recorded ones, and every ratio is consistent with the two figures it is derived from."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]  # the README and the pages it links, one per system
PERF = ROOT / "docs" / "benchmarks.md"  # the Benchmarks and Performance sections
RESULT = re.compile(r"bench/results/[\w.-]+\.(?:txt|md|json)")


def _run(*args: str, results: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "NANOFM_BENCH_NOTE")}
    env.update(OMP_NUM_THREADS="1", NANOFM_BENCH_RESULTS=str(results))
    proc = subprocess.run([sys.executable, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_run_all_quick_prints_one_table(tmp_path):
    pytest.importorskip("transformers")
    out = _run("run_all.py", "--quick", "--repeats", "1", results=tmp_path)
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6, out  # header + BERT MLM, BERT inference, ViT train / inference, translation, decoding
    assert all(row.count("|") == 8 for row in rows)


def test_gpu_suite_and_ablations_run_on_the_cpu(tmp_path):
    pytest.importorskip("transformers")
    out = _run("run_all.py", "--suite", "gpu", "--device", "cpu", "--quick", "--repeats", "1", results=tmp_path)
    assert "MLM train step" in out and "ViT train step" in out
    out = _run("ablations.py", "--quick", "--repeats", "1", results=tmp_path)
    assert "explicit attention" in out and "packed rows" in out


def test_gpu_recipe_timing_runs_on_the_cpu(tmp_path):
    """bench/gpu_pretrain.py (bench/gpu.sh's second part) tokenizes a corpus to shards and times the GPU config."""
    from nanofm.text.wordpiece import train_wordpiece

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "\n\n".join(f"el perro {i} come pan en la casa grande y bebe agua fresca." for i in range(200)) + "\n"
    for split in ("train", "valid"):
        (corpus / f"{split}.txt").write_text(text)
    train_wordpiece([corpus / "train.txt"], vocab_size=100, min_frequency=1).save(corpus)
    out = _run("gpu_pretrain.py", "--device", "cpu", "--quick", "--corpus", str(corpus), "--shards", str(tmp_path / "s"),
               results=tmp_path)
    assert "tokens/s" in out and "MFU" in out and "vocabulary 100" in out


def test_a_run_is_recorded_with_its_command_machine_and_versions(tmp_path):
    out = _run("attention_speed.py", "--repeats", "1", "--batch", "2", "--seq", "8", "--d-model", "16", results=tmp_path)
    (path,) = tmp_path.glob("attention_speed-*.txt")
    assert re.fullmatch(r"attention_speed-\d{8}-\d{4}\.txt", path.name)
    text = path.read_text(encoding="utf-8")
    assert set(out.splitlines()) <= set(text.splitlines())  # what was printed (stderr is recorded too)
    head = text.splitlines()[:5]
    assert head[0] == "# command: OMP_NUM_THREADS=1 python bench/attention_speed.py --repeats 1 --batch 2 --seq 8 --d-model 16"
    assert head[1].startswith("# date: 20") and "load average" in head[2] and "torch " in head[3]
    assert "self-attention" in text and text.splitlines()[-1].startswith("# finished: ")
    _run("attention_speed.py", "--repeats", "1", "--batch", "2", "--seq", "8", "--d-model", "16", results=tmp_path)
    assert len(list(tmp_path.glob("attention_speed-*.txt"))) == 2  # a second run in the same minute keeps the first


# ---------------------------------------------------------------------- the figures the documents quote


def _interval(figure: str) -> tuple[float, float]:
    """'7,128' -> (7127.5, 7128.5), '0.245' -> (0.2445, 0.2455): what a printed figure can stand for."""
    digits = figure.replace(",", "")
    half = 0.5 * 10 ** -(len(digits.split(".")[1]) if "." in digits else 0)
    return float(digits) - half, float(digits) + half


def _ratio_agrees(ratio: str, top: str, bottom: str) -> bool:
    """The printed ratio is top / bottom to its printed precision (allowing for the rounding of both)."""
    (r_lo, r_hi), (t_lo, t_hi), (b_lo, b_hi) = _interval(ratio), _interval(top), _interval(bottom)
    return t_lo / b_hi <= r_hi and t_hi / b_lo >= r_lo


def test_ratio_check_catches_a_wrong_ratio():
    assert _ratio_agrees("2.31", "1,043", "451") and not _ratio_agrees("2.4", "1,043", "451")
    assert _ratio_agrees("7.12", "1.747", "0.245") and not _ratio_agrees("7.55", "1.747", "0.245")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _table_rows(lines: list[str]) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("|---")]


def test_every_results_file_cited_exists():
    for doc in [*DOCS, BENCH / "NOTES.md", *sorted((ROOT / "configs").glob("*.yaml"))]:
        for cited in RESULT.findall(doc.read_text(encoding="utf-8")):
            assert (ROOT / cited).is_file(), f"{doc.name} cites {cited}, which is not there"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_quoted_blocks_are_the_recorded_output(doc):
    """A paragraph citing bench/results/X quotes X: its ratios and times in seconds are in X, and so is every
    line of the code blocks and tables right after it."""
    cited, inside, paragraph, checked = None, False, [], 0

    def recorded(path: str) -> str:
        return (ROOT / path).read_text(encoding="utf-8")

    def end_paragraph():
        nonlocal checked
        text = " ".join(paragraph)
        for figure in re.findall(r"\b\d+\.\d\dx|\b\d+\.\d+ s\b", text) if cited else []:
            assert figure in recorded(cited), f"{doc.name} quotes {figure} beside {cited}, which does not hold it"
            checked += 1
        paragraph.clear()

    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```") or inside or line.startswith("|"):
            if paragraph:
                end_paragraph()
            if line.startswith("```"):
                inside = not inside
            elif cited and line.strip():
                assert line in recorded(cited).splitlines(), f"{doc.name} quotes a line that is not in {cited}:\n{line}"
                checked += 1
        elif not line.strip():
            if paragraph:
                end_paragraph()
        else:  # prose or a heading: a new paragraph forgets the last one's citation
            if not paragraph:
                cited = None
            paragraph.append(line)
            found = RESULT.findall(line)
            cited = found[-1] if found else cited
    assert checked >= {"README.md": 20}.get(doc.name, 0)


def test_performance_table_ratios_agree_with_their_rates():
    perf = _section(PERF.read_text(encoding="utf-8"), "Performance")
    source = next(c for c in RESULT.findall(perf) if "run_all" in c)
    rows = _table_rows(perf.splitlines())
    assert rows[0][:4] == ["case", "nanofm", "reference", "ratio"] and len(rows) == 8
    recorded = _table_rows((ROOT / source).read_text(encoding="utf-8").splitlines())
    assert rows == recorded  # the README's table is the recorded run's
    for case, ours, ref, ratio, *_ in rows[1:]:
        (a, unit), (b, unit_b) = ours.split(" ", 1), ref.split(" ", 1)
        assert unit == unit_b and ratio.endswith("x"), case
        top, bottom = (b, a) if unit == "s" else (a, b)  # seconds: lower is better
        assert _ratio_agrees(ratio[:-1], top, bottom), f"{case}: {ratio} is not {top} / {bottom}"
    # every ratio the section's prose quotes is one of the table's (or the FLOP ratio, checked here)
    table_ratios = {row[3] for row in rows[1:]}
    flops = re.search(r"([\d.]+)x less arithmetic than the reference's \(([\d.]+) against ([\d.]+) GFLOP", perf)
    assert flops and _ratio_agrees(flops[1], flops[3], flops[2])
    prose = [line for line in perf.splitlines() if not line.startswith(("|", "#"))]
    for quoted in re.findall(r"\b(\d+\.\d\dx)", " ".join(prose)):
        assert quoted in table_ratios | {flops[1] + "x"}, f"Performance quotes {quoted}, which is not in the table"


def test_attention_speed_ratios_agree_with_their_times():
    text = _section(PERF.read_text(encoding="utf-8"), "Benchmarks")
    rows = re.findall(r"^(\S.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)x$", text, flags=re.M)
    assert len(rows) == 3
    for case, ours, ref, ratio in rows:
        assert _ratio_agrees(ratio, ref, ours), f"{case}: {ratio}x is not {ref} / {ours}"
