"""The shape of the code a newcomer meets (issue 22): lines of the CLI, of the engine's loop, the attention and
block signatures, imports inside functions, and the files that hold BERT, for one source tree.

  python bench/layout.py src/nanofm            # this tree
  git archive 5a1fc77 src | tar -x -C /tmp/before && python bench/layout.py /tmp/before/src/nanofm
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


# what a newcomer changing BERT touches: the model and heads, masking, the pretraining and fine-tuning tasks, the
# Hugging Face rename table, the presets and the task table
BERT_PARTS = {"BertConfig", "BertModel", "MLMHead", "Pooler", "ClassificationHead", "MLMCollator", "mask_words",
              "MLMTaskConfig", "FinetuneTaskConfig", "FillMask", "TextClassifier"}


def _registers(tree: ast.AST) -> bool:
    """A module that registers presets or tasks (a string like "bert-mini" there is a registration)."""
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", "") in ("register_family", "register_preset", "register_task", "TaskSpec")
               for n in ast.walk(tree))


def functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    out = {}
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        for f in cls.body:
            if isinstance(f, ast.FunctionDef):
                out[f"{cls.name}.{f.name}"] = f
    return out


def measure(root: Path) -> dict:
    files = sorted(root.rglob("*.py"))
    trees = {f: ast.parse(f.read_text()) for f in files}
    lines = {f: len(f.read_text().splitlines()) for f in files}
    fns = {k: v for t in trees.values() for k, v in functions(t).items()}
    cli = [f for f in files if f.relative_to(root).parts[0] in ("cli", "cli.py")]
    in_fn = 0
    for t in trees.values():
        for node in ast.walk(t):
            if isinstance(node, ast.FunctionDef):
                in_fn += sum(isinstance(s, ast.ImportFrom) and (s.module or "").startswith("nanofm") for s in ast.walk(node))
    bert = sorted({str(f.relative_to(root)) for f, t in trees.items() for n in ast.walk(t)
                   if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in BERT_PARTS
                   or isinstance(n, ast.Constant) and n.value == "BertForPreTraining"
                   or isinstance(n, ast.Constant) and n.value in ("bert", "mlm", "finetune") and _registers(t)})
    def span(name):
        f = fns.get(name)
        return None if f is None else f.end_lineno - f.lineno + 1
    def params(name):
        f = fns.get(name)
        return None if f is None else len(f.args.args) - 1 + len(f.args.kwonlyargs)
    trainer = next(f for f in files if f.name == "trainer.py")
    return {
        "modules": len(files), "lines": sum(lines.values()),
        "cli_lines": sum(lines[f] for f in cli), "cli_largest_module": max(lines[f] for f in cli),
        "trainer_py_lines": lines[trainer], "Trainer.fit_lines": span("Trainer.fit"),
        "MultiHeadAttention.forward_params": params("MultiHeadAttention.forward"),
        "TransformerBlock.forward_params": params("TransformerBlock.forward"),
        "TransformerStack.forward_params": params("TransformerStack.forward"),
        "nanofm_imports_inside_functions": in_fn,
        "files_holding_bert": bert,
        "folders_holding_bert": len({str(Path(f).parent) for f in bert}),
    }


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["src/nanofm"]:
        print(arg, measure(Path(arg)))
