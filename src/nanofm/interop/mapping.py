"""Rename tables between nanofm and Hugging Face state dicts, applied both ways with a strict check.

A table lists (nanofm path, Hugging Face path) pairs of modules or tensors. "{i}" stands for a layer index
on both sides; "{qkv}" on the Hugging Face side names the three projections (query, key, value) that
nanofm keeps fused in one qkv_proj, stacked along dim 0: (3D, D) weights, (3D,) biases.

Reading Hugging Face weights, every tensor of the nanofm model must come from them with its exact shape,
and every Hugging Face tensor must be used exactly once or dropped on purpose (`drop`, with a reason);
anything else is a WeightMismatchError that lists the missing, unexpected and mis-shaped names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nanofm.engine.checkpoint import tied_groups
from nanofm.errors import UserError

QKV = ("query", "key", "value")


class WeightMismatchError(UserError, ValueError):
    """Hugging Face weights that do not fit a nanofm model: lists what is missing, unexpected or mis-shaped."""


@dataclass
class Converted:
    """A nanofm model read from Hugging Face weights."""

    model: nn.Module  # its weights loaded
    architecture: str  # the Hugging Face class of the weights, e.g. "BertForPreTraining"
    labels: list[str] | None = None  # class names in id order (id2label) for classification heads
    dropped: list[str] = field(default_factory=list)  # Hugging Face tensors with no place in nanofm, with the reason


@dataclass(frozen=True)
class Rename:
    ours: str  # nanofm module or tensor path ("{i}": a layer index)
    theirs: str  # Hugging Face path ("{i}": the same index; "{qkv}": query, key and value, fused in ours)
    batch_dim: bool = False  # Hugging Face keeps a leading dimension of 1: (1, T, D) there, (T, D) here

    def pattern(self) -> re.Pattern:
        return re.compile("^" + re.escape(self.ours).replace(r"\{i\}", r"(?P<i>\d+)") + r"(?P<rest>\..+)?$")


@dataclass
class Plan:
    """A model's table and what may be left out of Hugging Face weights: regex -> reason."""

    renames: list[Rename]
    drop: dict[str, str] = field(default_factory=dict)  # Hugging Face names with no place here, dropped on purpose
    aliases: dict[str, str] = field(default_factory=dict)  # a tied copy -> the name of the tensor it must equal

    def theirs(self, key: str) -> tuple[list[str], Rename] | None:
        """A nanofm tensor name -> its Hugging Face name(s) (three for a fused qkv) and the rule; None: no rule."""
        for rule in self.renames:
            m = rule.pattern().match(key)
            if m:
                groups = m.groupdict()
                name = rule.theirs.replace("{i}", groups.get("i") or "") + (groups["rest"] or "")
                return ([name.replace("{qkv}", p) for p in QKV] if "{qkv}" in name else [name]), rule
        return None


def _report(what: str, missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    parts = [f"{len(v)} {k}: {', '.join(v[:8])}{', ...' if len(v) > 8 else ''}"
             for k, v in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if v]
    return f"{what}: " + "; ".join(parts)


def canonical_names(model: nn.Module) -> list[str]:
    """The model's state-dict names, one per tensor (the first name of tied weights)."""
    return [names[0] for names in tied_groups(model)]


def load_from_hf(model: nn.Module, hf: Mapping[str, Tensor], plan: Plan, what: str) -> list[str]:
    """Fill `model` from Hugging Face tensors `hf` by `plan`, strictly (see the module doc). Returns the
    dropped names, each with its reason."""
    own, sd, used = model.state_dict(), {}, Counter()
    missing, misshaped = [], []
    hf = dict(hf)
    for alias, target in plan.aliases.items():  # some files keep only the tied copy's name
        if alias in hf and target not in hf:
            hf[target] = hf.pop(alias)
    for key in canonical_names(model):
        found = plan.theirs(key)
        if found is None:
            raise WeightMismatchError(f"{what}: no Hugging Face name for nanofm's {key}")
        names, rule = found
        used.update(n for n in names if n in hf)  # a fused part present beside a missing one is not unexpected
        if absent := [n for n in names if n not in hf]:
            missing += absent
            continue
        t = torch.cat([hf[n] for n in names]) if len(names) > 1 else hf[names[0]]  # (3D, ...) for a fused qkv
        if rule.batch_dim and t.ndim == own[key].ndim + 1 and t.size(0) == 1:
            t = t[0]  # (1, T, D) -> (T, D)
        if t.shape != own[key].shape:
            misshaped.append(f"{'+'.join(names)} {tuple(t.shape)} (nanofm {key} {tuple(own[key].shape)})")
        sd[key] = t
    for alias, target in plan.aliases.items():  # e.g. an MLM decoder weight saved beside the embeddings it is tied to
        if alias in hf:
            used[alias] += 1
            if target in hf and not torch.equal(hf[alias], hf[target]):
                raise WeightMismatchError(f"{what}: {alias} differs from {target}; nanofm ties them")
    dropped, unexpected = [], []
    for k in (k for k in hf if not used[k]):
        reason = next((r for p, r in plan.drop.items() if re.fullmatch(p, k)), None)
        if reason is None:
            unexpected.append(k)
        else:
            dropped.append(f"{k} ({reason})")
    if twice := [k for k, n in used.items() if n > 1]:
        raise WeightMismatchError(f"{what}: Hugging Face tensors used twice by the table: {twice[:8]}")
    if missing or unexpected or misshaped:
        raise WeightMismatchError(_report(f"Hugging Face weights do not fit nanofm's {what}", missing, unexpected, misshaped))
    for names in tied_groups(model):  # every name of a tied tensor
        for n in names[1:]:
            sd[n] = sd[names[0]]
    model.load_state_dict(sd, strict=True)
    return dropped


def export_to_hf(model: nn.Module, plan: Plan, what: str, extra: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """nanofm model -> Hugging Face tensors by `plan`: one name per tied tensor, fused qkv split in three,
    every tensor its own contiguous copy (safetensors refuses shared memory). `extra` holds tensors that
    are not in the state dict (a fixed position table) under nanofm names."""
    sd, extra = model.state_dict(), extra or {}
    out: dict[str, Tensor] = {}
    unnamed = []
    for key in [*canonical_names(model), *extra]:
        t = extra[key] if key in extra else sd[key]
        found = plan.theirs(key)
        if found is None:
            unnamed.append(key)
            continue
        names, rule = found
        parts = t.chunk(3) if len(names) == 3 else (t[None] if rule.batch_dim else t,)
        out.update({n: p.detach().clone().contiguous() for n, p in zip(names, parts, strict=True)})
    if unnamed:
        raise WeightMismatchError(f"{what}: no Hugging Face name for nanofm's {unnamed[:8]}")
    return out
