"""`nanofm` commands, using trained models: predict, fill-mask, classify, translate, generate, unclip, convert."""

from __future__ import annotations

import argparse
import sys

from nanofm.cli.args import positive_int
from nanofm.config import ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
    p = sub.add_parser(
        "predict",
        help="use any trained model: fill masks, translate, classify texts or images, tag words, or draw captions",
        description="Opens RUN (a run folder, an unCLIP folder or a Hugging Face folder) with nanofm.load and runs "
        "what it was trained for on each input: text from the arguments, each line of --file, or each line of "
        "standard input; image paths for an image classifier. Prints one answer per input (a PNG grid for "
        "text to image).",
    )
    p.add_argument("run_dir", metavar="RUN", help="a run folder (mlm, finetune, translation, image-classify), an "
                   "unCLIP folder, or a Hugging Face BERT or ViT folder")
    p.add_argument("inputs", nargs="*", default=[], help="texts, or image paths (default: lines of --file or stdin)")
    p.add_argument("--file", help="one input per line of this UTF-8 file")
    p.add_argument("-k", "--top-k", type=positive_int, default=3, help="answers per input (default 3)")
    p.add_argument("--beam", type=positive_int, default=4, help="translation: beam size (default 4)")
    p.add_argument("--steps", type=positive_int, default=50, help="text to image: DDIM steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="text to image: random seed (default 0)")
    p.add_argument("-o", "--out", default="predict.png", help="text to image: the PNG to write (default predict.png)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, else MPS, else the CPU)")
    p.add_argument("--checkpoint", default="best", help="run folders: best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("fill-mask", help="the likeliest tokens for each [MASK] in a sentence, with a pretrained run")
    p.add_argument("run_dir", help="a run folder written by `nanofm pretrain`, or a Hugging Face BERT folder with its "
                   "masked-LM head (BertForMaskedLM, BertForPreTraining)")
    p.add_argument("text", nargs="+", help='text with [MASK], e.g. "La capital de [MASK] es Madrid."')
    p.add_argument("-k", "--top-k", type=positive_int, default=5, help="candidates per mask (default 5)")
    p.add_argument("--checkpoint", default="best", help="run folders: best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_fill_mask)

    p = sub.add_parser("classify", help="the likeliest classes of images, with an image-classification run")
    p.add_argument("run_dir", help="a run folder of task image-classify (nanofm train configs/vit-fmnist.yaml, or finetune)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...); resized to the model's input size")
    p.add_argument("-k", "--top-k", type=positive_int, default=3, help="classes per image (default 3)")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "translate",
        help="translate text with a trained translation run",
        description="Translate the given text, each line of --file, or each line of standard input. Empty lines "
        "give empty lines; a line longer than the model's max_len is truncated (with a warning); characters the "
        "tokenizer never saw become [UNK] and show as ⁇.",
    )
    p.add_argument("run_dir", help="a run folder of translate-rnn or translate-transformer")
    p.add_argument("text", nargs="*", default=[], help="text to translate (default: read lines from --file or stdin)")
    p.add_argument("--file", help="translate each line of this UTF-8 file")
    p.add_argument("--beam", type=positive_int, default=4, help="beam size (1 = greedy; default 4)")
    p.add_argument("--alpha", type=float, default=None, help="length-penalty exponent (default: the run's data.length_penalty)")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--show-attention", metavar="OUT.png",
                   help="draw the attention of the first line (RNN attention, or the Transformer's cross-attention heads)")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("generate", help="images from a caption (Spanish or English) with an unCLIP folder, as a PNG grid")
    p.add_argument("run_dir", metavar="RUN_DIR", help="an unCLIP folder (see `nanofm unclip`)")
    p.add_argument("caption", help='e.g. "un vestido rojo" or "a blue bag to the left of a white sneaker"')
    p.add_argument("-n", type=positive_int, default=8, help="images (default 8)")
    p.add_argument("-o", "--out", default="grid.png", help="the PNG to write (default grid.png)")
    p.add_argument("--steps", type=positive_int, default=50, help="DDIM steps of the decoder (default 50)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale of the decoder (default 3)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 DDPM-like (default 0)")
    p.add_argument("--prior-steps", type=positive_int, default=64, help="DDIM steps of the prior (default 64)")
    p.add_argument("--prior-guidance", type=float, default=1.0, help="guidance scale of the prior (default 1)")
    p.add_argument("--no-prior", action="store_true", help="condition the decoder on the CLIP text embedding (ablation)")
    p.add_argument("--seed", type=int, help="makes the images repeatable")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("unclip", help="tie a CLIP, a diffusion-prior and a diffusion-decoder run into one folder for generate",
                       description="Write OUT/unclip.yaml naming the runs (relative paths); the prior and the decoder "
                       "must have been trained on the same CLIP run, which is the one named.")
    p.add_argument("out", metavar="OUT", help="the unCLIP folder to write, e.g. runs/unclip-scenes")
    p.add_argument("--prior", required=True, help="a diffusion-prior run folder")
    p.add_argument("--decoder", required=True, help="a diffusion-decoder run folder")
    p.add_argument("--clip", help="the CLIP run (default: the one the decoder was trained on)")
    p.set_defaults(func=cmd_unclip)

    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face BERT or ViT folder into a nanofm run folder, or a run into a Hugging Face folder",
        description="--from-hf DIR OUT: read DIR (config.json, model.safetensors or pytorch_model.bin, the tokenizer "
        "files) and write run folder OUT (config.yaml, tokenizer.json, checkpoints/) that fill-mask, finetune, "
        "benchmark beto and classify read; every weight is checked by name and shape, and weights nanofm has no "
        "place for (a next-sentence head, a pooler) are listed. --to-hf RUN_DIR OUT: write config.json, "
        "model.safetensors and the tokenizer files (tokenizer.json, vocab.txt, tokenizer_config.json, "
        "special_tokens_map.json; preprocessor_config.json for ViT) that transformers loads. BERT runs (pretrain, "
        "finetune) and ViT runs (image classification, MAE encoder). No network: folders on disk only.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--from-hf", metavar="DIR", help="a Hugging Face folder to read")
    which.add_argument("--to-hf", metavar="RUN_DIR", help="a nanofm run folder to export")
    p.add_argument("out", metavar="OUT", help="the folder to write (must be new or empty, unless --overwrite)")
    p.add_argument("--checkpoint", default="best", help="--to-hf: best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a folder of the kind written (a run folder, or a Hugging Face folder); nothing else is removed")
    p.set_defaults(func=cmd_convert)


def cmd_predict(args: argparse.Namespace) -> None:
    from nanofm.api import load
    from nanofm.families.t2i.pipeline import TextToImage
    from nanofm.families.bert.finetune import TextClassifier, TokenTagger
    from nanofm.families.bert.pretrain import FillMask, excerpt
    from nanofm.families.seq2seq.translation import Translator, read_lines
    from nanofm.families.vit.task import ImageClassifier

    predictor = load(args.run_dir, args.checkpoint, args.device)
    inputs = args.inputs or read_lines(args.file)  # --file, else standard input: one input per line
    inputs = [x for x in inputs if x.strip()] if not isinstance(predictor, Translator) else inputs
    if not inputs:
        raise ConfigError("nothing to predict: give inputs as arguments, with --file, or on standard input")
    k = args.top_k
    if isinstance(predictor, Translator):
        for out in predictor.translate(inputs, beam=args.beam):
            print(out)
    elif isinstance(predictor, TextToImage):
        from nanofm.viz.samples import plot_sample_grid

        images = predictor(inputs, steps=args.steps, seed=args.seed)
        print(f"wrote {plot_sample_grid(images, args.out, caption=' | '.join(inputs))}")
    else:
        outputs = predictor(inputs, k) if isinstance(predictor, (FillMask, TextClassifier, ImageClassifier)) else predictor(inputs)
        for x, out in zip(inputs, outputs):
            if isinstance(predictor, FillMask):
                print(excerpt(x))
                for i, candidates in enumerate(out):
                    print(f"  [MASK] {i + 1}: " + ", ".join(f"{tok} {p:.3f}" for tok, p in candidates))
            elif isinstance(predictor, TokenTagger):
                print(" ".join(f"{word}/{tag}" for word, tag in out))
            else:  # an image path whole, a text as an excerpt
                head = x if isinstance(predictor, ImageClassifier) else excerpt(x)
                print(f"{head}: " + ", ".join(f"{name} {p:.3f}" for name, p in out))


def cmd_fill_mask(args: argparse.Namespace) -> None:
    from nanofm.families.bert.pretrain import FillMask, excerpt

    fill = FillMask.load(args.run_dir, args.checkpoint)
    for text in args.text:
        print(excerpt(text))
        for i, candidates in enumerate(fill(text, args.top_k)):
            print(f"  [MASK] {i + 1}: " + ", ".join(f"{tok} {p:.3f}" for tok, p in candidates))


def cmd_classify(args: argparse.Namespace) -> None:
    from nanofm.families.vit.task import ImageClassifier

    classify = ImageClassifier.load(args.run_dir, args.checkpoint)
    for path in args.images:
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in classify(path, args.top_k)))


def cmd_translate(args: argparse.Namespace) -> None:
    from nanofm.families.seq2seq.translation import Translator, read_lines

    translator = Translator.load(args.run_dir, args.checkpoint)
    lines = args.text or read_lines(args.file)  # --file, else standard input: one output line per input line
    outputs = translator.translate(lines, beam=args.beam, alpha=args.alpha)
    for out in outputs:
        print(out)
    if args.show_attention:
        from nanofm.viz import plot_attention

        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None:
            raise ConfigError("--show-attention needs a non-empty line to translate")
        src, tgt, maps = translator.attention(lines[first], outputs[first])
        plot_attention(src, tgt, maps, args.show_attention, title=f"{lines[first]}  ->  {outputs[first]}")
        kind = "cross-attention heads of the last decoder layer" if maps.size(1) > 1 else "attention"
        print(f"{kind} written to {args.show_attention}", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> None:
    from nanofm.families.t2i.pipeline import TextToImage
    from nanofm.viz.samples import plot_sample_grid

    t2i = TextToImage.load(args.run_dir, args.checkpoint)
    images = t2i([args.caption] * args.n, steps=args.steps, guidance=args.guidance, eta=args.eta,
                 use_prior=not args.no_prior, prior_steps=args.prior_steps, prior_guidance=args.prior_guidance,
                 seed=args.seed, progress=not args.no_progress, batch=args.n)
    how = f"DDIM {args.steps}, guidance {args.guidance:g}" + (", no prior" if args.no_prior else "")
    print(f"wrote {plot_sample_grid(images, args.out, caption=f'{args.caption}  ({how})')}")


def cmd_unclip(args: argparse.Namespace) -> None:
    from nanofm.families.t2i.pipeline import write_unclip

    print(f"wrote {write_unclip(args.out, args.prior, args.decoder, args.clip)}")


def cmd_convert(args: argparse.Namespace) -> None:
    from nanofm.convert import convert_from_hf, convert_to_hf

    if args.from_hf:
        lines = convert_from_hf(args.from_hf, args.out, overwrite=args.overwrite)
    else:
        lines = convert_to_hf(args.to_hf, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print("\n".join(lines))
