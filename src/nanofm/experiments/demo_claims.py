"""The demo's verdicts: each part's claim of the lecture, its measured figures, the bar it must clear at the
default 30-minute budget, and whether it did ("shown") or not ("not shown at this budget").

A part's figures are the plain numbers its runner keeps in demo.json (parts.NAME.figures); the verdicts are
computed from them here, never typed in, so a table where a claim fails reads "not shown".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

SHOWN, NOT_SHOWN, NOT_RUN = "shown", "not shown at this budget", "not run"


@dataclass
class Verdict:
    part: str
    claim: str  # the lecture's claim, in a sentence
    figure: str  # what was measured, in words and numbers
    bar: str  # what it must reach at the default budget
    verdict: str  # SHOWN, NOT_SHOWN or NOT_RUN


def _translation(f: dict) -> tuple[str, str, bool]:
    rnn, tr = f["bleu_rnn"], f["bleu_transformer"]
    figure = f"test BLEU: Transformer {tr:.2f}, RNN with attention {rnn:.2f} ({tr - rnn:+.2f})"
    if f.get("test_sentences"):
        figure += f", on {f['test_sentences']:,} test sentences"
        figure += f" of at most {f['max_tokens']} tokens" if f.get("max_tokens") else ""
    return figure, "Transformer >= RNN + 3 BLEU, and >= 12 BLEU", tr >= rnn + 3 and tr >= 12


def _bert(f: dict) -> tuple[str, str, bool]:
    gains = f["gains"]  # task -> pretrained minus random weights, points
    mean = sum(gains.values()) / max(len(gains), 1)
    worst = min(gains, key=gains.get) if gains else None
    figure = f"held-out masked accuracy {f['masked_accuracy']:.2f}%; mean gain of pretraining {mean:+.2f} points"
    if worst is not None:
        figure += f" over {len(gains)} tasks (smallest: {worst} {gains[worst]:+.2f})"
    if f.get("labels"):
        figure += f", fine-tuned on {f['labels']:,} labelled examples per task"
    ok = f["masked_accuracy"] >= 20 and bool(gains) and min(gains.values()) > 0 and mean >= 5
    return figure, "masked accuracy >= 20%; pretrained beats random weights on every task, mean gain >= +5 points", ok


def _vision(f: dict) -> tuple[str, str, bool]:
    s, m = f["scratch"], f["mae_finetune"]
    figure = f"test accuracy: MAE + fine-tune {m:.2f}%, from scratch {s:.2f}% ({m - s:+.2f} points)"
    if f.get("labels"):
        figure += f", {f['labels']:,} labelled images"
    return figure, "MAE + fine-tune >= from scratch + 2 points, same total time", m >= s + 2


def _t2i(f: dict) -> tuple[str, str, bool]:
    figure = (f"caption fidelity {f['fidelity']:.1f}% on {f['captions']} one-item captions (verifier {f['verifier']:.1f}% "
              f"right on real scenes); CLIP top-1 among 100 {f['clip_top1']:.1f}%")
    ok = f["fidelity"] >= 70 and f["verifier"] >= 90 and f["captions"] >= 200 and f["clip_top1"] >= 70
    return figure, "fidelity >= 70% on >= 200 captions with a verifier >= 90% right; CLIP top-1/100 >= 70%", ok


CLAIMS: dict[str, tuple[str, Callable[[dict], tuple[str, str, bool]]]] = {
    "translation": ("The Transformer translates better than the RNN with attention", _translation),
    "bert": ("Pretraining on unlabelled text, then fine-tuning, beats training from scratch", _bert),
    "vision": ("Self-supervised pretraining (MAE) helps the Vision Transformer", _vision),
    "t2i": ("Text in, a matching image out (CLIP, diffusion prior, diffusion decoder)", _t2i),
}


def verdicts(state: dict) -> list[Verdict]:
    """One verdict per part, from demo.json's state."""
    out = []
    for part, (claim, judge) in CLAIMS.items():
        figures = state.get("parts", {}).get(part, {}).get("figures")
        if not figures:
            out.append(Verdict(part, claim, "-", "-", NOT_RUN))
            continue
        figure, bar, ok = judge(figures)
        out.append(Verdict(part, claim, figure, bar, SHOWN if ok else NOT_SHOWN))
    return out


def claims_markdown(state: dict) -> str:
    lines = ["| claim of the lecture | measured | bar (30-minute demo) | verdict |", "|---|---|---|---|"]
    for v in verdicts(state):
        mark = f"**{v.verdict}**" if v.verdict == SHOWN else v.verdict
        lines.append(f"| {v.claim} | {v.figure} | {v.bar} | {mark} |")
    return "\n".join(lines) + "\n"


def write_claims(out: Path, state: dict) -> Path:
    """out/claims.json: each part's verdict, figures, bar, budget and time, for scripts."""
    parts = state.get("parts", {})
    data = {"budget_s": state.get("budget_s"), "preset": state.get("preset"), "machine": state.get("machine"),
            "claims": [{**asdict(v), "figures": parts.get(v.part, {}).get("figures"),
                        "budget_s": parts.get(v.part, {}).get("budget_s"), "seconds": parts.get(v.part, {}).get("seconds")}
                       for v in verdicts(state)]}
    path = Path(out) / "claims.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
