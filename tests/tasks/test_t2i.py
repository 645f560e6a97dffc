"""Text to image end to end with tiny models: prepare scenes from Fashion-MNIST-format IDX files written here
(random pixels, no Debian package needed), train CLIP, the prior, the decoder and the verifier a few steps each
through the CLI, tie them, generate, benchmark; and the benchmark's measures on stub models whose answers are
known."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nanofm.cli import main
from nanofm.data.scenes import SceneSet, compose_one, scene_captions, zero_shot_prompts
from nanofm.experiments import t2i as bt
from nanofm.families.t2i.pipeline import TextToImage
from nanofm.families.t2i.task import clip_retrieval, verify
from tests.vision.fakes import write_fake_fashion_mnist, write_idx

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.usefixtures("one_thread")
RUN = ["train.batch_size=16", "train.warmup_steps=2", "train.eval_every=0", "train.save_every=0", "data.eval_size=100",
       "--no-progress"]
TINY_CLIP = ["model.text.d_model=32", "model.text.n_layers=1", "model.text.n_heads=2", "model.text.d_ff=64",
             "model.image.d_model=32", "model.image.n_layers=1", "model.image.n_heads=2", "model.image.d_ff=64",
             "model.embed_dim=16"]
TINY_DIFF = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64", "model.diffusion.timesteps=50"]


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    """The four IDX files of dataset-fashion-mnist, 600 random training and 600 test images."""
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist-idx"), n_train=600, n_test=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fmnist):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two contending ones on a busy machine
    try:
        yield _train_runs(tmp_path_factory.mktemp("t2i"), fmnist)
    finally:
        torch.set_num_threads(threads)


def _train_runs(tmp: Path, fmnist: Path) -> Path:
    data = tmp / "scenes"
    assert main(["data", "prepare", "fashion-scenes", "--source", str(fmnist), "--out", str(data), "--limit", "600",
                 "--pairs", "2000"]) == 0
    d = [f"data.dir={data}"]
    assert main(["pretrain", str(CONFIGS / "clip-scenes.yaml"), "train.steps=4", *d, *TINY_CLIP, *RUN,
                 "--out", str(tmp / "clip")]) == 0
    clip = [f"clip={tmp / 'clip'}"]
    assert main(["train", str(CONFIGS / "prior-scenes.yaml"), "train.steps=3", "sample_steps=3", *clip, *d, *TINY_DIFF,
                 *RUN, "--out", str(tmp / "prior")]) == 0
    assert main(["train", str(CONFIGS / "decoder-scenes.yaml"), "train.steps=3", *clip, *d, *TINY_DIFF, *RUN,
                 "--out", str(tmp / "decoder")]) == 0
    assert main(["train", str(CONFIGS / "verifier-scenes.yaml"), "train.steps=3", "model.width=8", "model.hidden=16",
                 *d, *RUN, "--out", str(tmp / "verifier")]) == 0
    assert main(["unclip", str(tmp / "unclip"), "--prior", str(tmp / "prior"), "--decoder", str(tmp / "decoder")]) == 0
    return tmp


def test_prepare_reports_sizes(runs):
    meta = json.loads((runs / "scenes" / "meta.json").read_text())
    assert set(meta["sizes"]) == {"train", "val", "test", "heldout"}
    assert meta["sizes"]["test"]["one_item"] == 600 and meta["sizes"]["train"]["two_items"] > 0
    assert (runs / "scenes" / "tokenizer.json").is_file()


def test_runs_and_unclip_folder(runs):
    for name in ("clip", "prior", "decoder", "verifier"):
        assert (runs / name / "checkpoints").is_dir(), name
    assert (runs / "clip" / "tokenizer.json").is_file()
    assert (runs / "decoder" / "reconstructions.png").is_file()
    text = (runs / "unclip" / "unclip.yaml").read_text()
    assert "clip: ../clip" in text and "prior: ../prior" in text


def test_generate_writes_a_repeatable_grid(runs, tmp_path):
    from PIL import Image

    outs = []
    for i in range(2):
        out = tmp_path / f"grid{i}.png"
        assert main(["generate", str(runs / "unclip"), "un vestido rojo", "-n", "4", "-o", str(out), "--steps", "5",
                     "--guidance", "3", "--prior-steps", "3", "--seed", "0", "--no-progress"]) == 0
        outs.append(out.read_bytes())
    assert Image.open(tmp_path / "grid0.png").size[0] > 100
    assert outs[0] == outs[1]  # --seed makes it repeatable
    assert main(["generate", str(runs / "unclip"), "a blue bag", "-n", "2", "-o", str(tmp_path / "np.png"),
                 "--steps", "3", "--no-prior", "--no-progress"]) == 0


def test_benchmark_t2i_prints_the_table(runs, fmnist, tmp_path, capsys):
    assert main(["benchmark", "t2i", str(runs / "unclip"), "--verifier", str(runs / "verifier"), "-n", "4", "--steps", "2",
                 "--fmnist", str(fmnist), "--out", str(tmp_path / "bench"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for what in ("caption fidelity, one item, seen combinations", "held-out combinations", "random baseline",
                 "CLIP top-1 caption retrieval among 100", "zero-shot", "no prior"):
        assert what in out, what
    rows = {r["measure"]: r for r in json.loads((tmp_path / "bench" / "table.json").read_text())["rows"]}
    # the arithmetic of the table from its own inputs: chance is 1 / (10 items x 6 colours) per mentioned
    # item; fidelity relative to the verifier is their quotient; "exact" needs items and colours both right
    assert rows["random baseline (one item, seen combinations)"]["value"] == pytest.approx(1 / 60)
    assert rows["random baseline (two items, seen combinations)"]["value"] == pytest.approx(1 / 3600)
    for name in ("one item, seen combinations", "one item, held-out combinations", "two items, seen combinations"):
        fid, ver = rows[f"caption fidelity, {name}"], rows[f"verifier on the real scenes of those captions ({name})"]
        items, colours, relative = map(float, re.search(
            r"items ([\d.]+), colours ([\d.]+);.*relative to the verifier ([\d.]+)", fid["note"]).groups())
        assert fid["value"] <= min(items, colours) + 5e-4
        assert relative == pytest.approx(fid["value"] / max(ver["value"], 1e-9), abs=5e-4)
    assert all(0.0 <= r["value"] <= 1.0 for r in rows.values())
    table = (tmp_path / "bench" / "table.md").read_text()
    for r in rows.values():
        assert f"| {r['measure']} | {100 * r['value']:.2f}% |" in table


def test_unclip_refuses_runs_of_other_tasks(runs):
    assert main(["unclip", str(runs / "x"), "--prior", str(runs / "decoder"), "--decoder", str(runs / "decoder")]) != 0


# ---------------------------------------------------------------- the measures, on stubs with known answers


class _StubVerifier(torch.nn.Module):
    """Reads each image's scene number from its first pixel and answers the prepared (items, colours)."""

    def __init__(self, items: torch.Tensor, colours: torch.Tensor, scale: float = 1.0):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # (verify asks for the device)
        self.items, self.colours, self.scale = items, colours, scale

    def predict(self, images):
        idx = ((images[:, 0, 0, 0] + 1) / 2 * self.scale).round().long() - 1  # pixel (i + 1) / scale in [0, 1] -> i
        return self.items[idx], self.colours[idx]


def _scenes(n: int) -> SceneSet:
    """n one-item scenes, item i % 10 in colour i % 6 (captions from that truth)."""
    items = torch.tensor([[i % 10, -1, -1] for i in range(n)])
    colours = torch.tensor([[i % 6, -1, -1] for i in range(n)])
    images = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    return SceneSet(images, items, colours, [scene_captions(i.tolist(), c.tolist()) for i, c in zip(items, colours)])


def _answers(truth: SceneSet):
    """The verifier's answers: scene 0 and 3 right; scene 1 a wrong item; scene 2 a wrong colour in an EMPTY
    slot (which must count: exact means every slot right)."""
    items, colours = truth.items.clone(), truth.colours.clone()
    items[1, 0] = (items[1, 0] + 1) % 10
    colours[2, 2] = 4
    return items, colours


def test_verify_scores_every_slot_of_every_image_in_order():
    truth = _scenes(4)
    ver = _StubVerifier(*_answers(truth), scale=10.0)
    images = (torch.arange(1, 5).float() / 10).view(4, 1, 1, 1).expand(4, 3, 32, 32) * 2 - 1  # scene i: (i + 1) / 10
    ok = verify(ver, images, truth.items, truth.colours, batch=3)  # two batches: 3 + 1
    assert ok["exact"].tolist() == [True, False, False, True]
    assert ok["items"].tolist() == [True, False, True, True] and ok["colours"].tolist() == [True, True, False, True]
    assert bt.verifier_accuracy(_StubVerifier(*_answers(truth), scale=255 / 1.0), SceneSet(
        torch.arange(1, 5, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 32, 32).contiguous(), truth.items,
        truth.colours, truth.captions)) == 0.5  # 2 of 4 exactly right


def test_fidelity_is_the_share_of_generated_images_the_verifier_finds_right():
    truth = _scenes(4)
    calls = []

    def t2i(captions, **kw):  # one image per caption, its first pixel (i + 1) / 10
        calls.append((captions, kw))
        return (torch.arange(1, len(captions) + 1).float() / 10).view(-1, 1, 1, 1).expand(-1, 3, 32, 32)

    f = bt.fidelity(t2i, _StubVerifier(*_answers(truth), scale=10.0), truth, use_prior=False, steps=7, guidance=2.5,
                    seed=3, progress=False)
    assert f == {"exact": 0.5, "items": 0.75, "colours": 0.75}
    (captions, kw), = calls
    assert captions == [truth.captions[0]["es"][0], truth.captions[1]["en"][0], truth.captions[2]["es"][1],
                        truth.captions[3]["en"][1]]  # fixed captions: Spanish and English in turn, phrasings in turn
    assert kw == {"steps": 7, "guidance": 2.5, "use_prior": False, "seed": 3, "progress": False}
    right3 = _answers(truth)[0], truth.colours  # only scene 1's item wrong: 3 of 4
    assert bt.fidelity(t2i, _StubVerifier(*right3, scale=10.0), truth, True, 1, 1.0, 0, False)["exact"] == 0.75


class _StubClip(torch.nn.Module):
    """Embeddings chosen by hand: an image's from its first pixel, a caption's from its first token."""

    def __init__(self, image_emb: torch.Tensor, text_emb: torch.Tensor):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.image_emb, self.text_emb = image_emb, text_emb

    def encode_image(self, images):
        return self.image_emb[((images[:, 0, 0, 0] + 1) * 127.5).round().long()]

    def encode_text(self, tokens, pad=None):
        return self.text_emb[tokens[:, 0]]


def test_clip_retrieval_counts_the_best_caption_of_each_block():
    """Blocks of 4 scenes (10 scenes: the last 2 are left out); an image is right when its best caption
    in its own block has its content key, the same scene's or another of equal content."""
    keys = torch.tensor([10, 11, 12, 10, 20, 21, 22, 23, 30, 31])
    best = {0: 0, 1: 2, 2: 2, 3: 0, 4: 4, 5: 5, 6: 4, 7: 7, 8: 9, 9: 8}  # 1 and 6 wrong; 3 right (same key)
    image_emb = torch.zeros(10, 10)
    for i, j in best.items():
        image_emb[i, j] = 1.0
    image_emb[5, 1] = 2.0  # closest of ALL captions to caption 1, of another block: it must not be considered
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 3, 4, 4) / 127.5 - 1
    tokens, pad = torch.arange(10)[:, None], torch.zeros(10, 1, dtype=torch.bool)
    clip = _StubClip(image_emb, torch.eye(10))
    assert clip_retrieval(clip, images, tokens, pad, keys, block=4, batch=3) == 6 / 8


def test_zero_shot_fmnist_is_the_accuracy_against_one_prompt_per_class(tmp_path):
    """20 test images with labels i % 10; the stub CLIP sees class (label + 1) % 10 in every 4th image, the
    label in the others; the Spanish prompts embed as their class, the English ones one class on: Spanish
    15 of 20 right, English exactly the other 5."""
    labels = np.arange(20) % 10
    seen = np.where(np.arange(20) % 4 == 0, (labels + 1) % 10, labels)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 0, 0] = seen * 20  # the class the stub sees, in the item's corner pixel
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    # compose_one puts the item at the centre (2-pixel margin) in white: scene pixel (2, 2) is the grey value
    assert compose_one(torch.from_numpy(images[:1, None]), torch.tensor([5]))[0, 0, 2, 2] == seen[0] * 20

    class Clip(_StubClip):
        def encode_image(self, x):
            grey = ((x[:, 0, 2, 2] + 1) * 127.5).round().long()
            return torch.eye(10)[grey // 20]

        def encode_text(self, tokens, pad=None):
            lang, k = tokens[:, 0] // 10, tokens[:, 0] % 10
            return torch.eye(10)[(k + lang) % 10]  # es (0): class k; en (1): class k + 1

    prompts = {t: 10 * li + k for li, lang in enumerate(("es", "en")) for k, t in enumerate(zero_shot_prompts(lang))}
    encode = lambda texts: (torch.tensor([[prompts[t]] for t in texts]), torch.zeros(len(texts), 1, dtype=torch.bool))  # noqa: E731
    t2i = SimpleNamespace(pipeline=SimpleNamespace(clip=Clip(torch.zeros(1), torch.zeros(1))), encode=encode)
    assert bt.zero_shot_fmnist(t2i, tmp_path) == {"es": 0.75, "en": 0.25}
    assert bt.zero_shot_fmnist(t2i, tmp_path, langs=("es",), n=6) == {"es": pytest.approx(4 / 6)}  # first 6: 0 and 4 wrong


def test_benchmark_t2i_table_holds_each_measure_in_its_row(monkeypatch, tmp_path):
    """The table's rows from stub measures with known values: which measure lands in which row, the
    verifier-relative fidelity (a quotient), the chance rows, and the percentages of table.md."""
    def scene_set(items, colours):
        return SceneSet(torch.zeros(len(items), 3, 32, 32, dtype=torch.uint8), torch.tensor(items), torch.tensor(colours),
                        [scene_captions(i, c) for i, c in zip(items, colours)])

    one, two = ([i, -1, -1] for i in range(3)), [[-1, 1, 2], [-1, 3, 4]]
    test = scene_set([*one, *two], [[0, -1, -1]] * 3 + [[-1, 0, 1]] * 2)  # seen combinations: colour 0 alone
    held = scene_set([[i, -1, -1] for i in range(3)], [[1, -1, -1]] * 3)  # held-out ones: colour 1

    def which(scenes):
        return "two" if scenes.items[0, 0] < 0 else "seen" if scenes.colours[0, 0] == 0 else "held"

    fid = {(True, "seen"): (0.5, 0.75, 0.6), (True, "held"): (0.25, 0.5, 0.5), (True, "two"): (0.1, 0.2, 0.3),
           (False, "seen"): (0.3, 0.4, 0.5), (False, "held"): (0.2, 0.3, 0.4)}
    ver = {"seen": 0.8, "held": 0.5, "two": 0.4}
    monkeypatch.setattr(TextToImage, "load", lambda run_dir: SimpleNamespace(
        data_dir="scenes", pipeline=SimpleNamespace(clip=None),
        encode=lambda texts: (torch.zeros(len(texts), 1, dtype=torch.long), torch.zeros(len(texts), 1, dtype=torch.bool))))
    monkeypatch.setattr(bt, "load_verifier", lambda run_dir: None)
    monkeypatch.setattr(bt, "load_scenes", lambda folder, split: {"test": test, "heldout": held}[split])
    monkeypatch.setattr(bt, "fidelity", lambda t2i, v, scenes, use_prior, *a: dict(
        zip(("exact", "items", "colours"), fid[use_prior, which(scenes)])))
    monkeypatch.setattr(bt, "verifier_accuracy", lambda v, scenes: ver[which(scenes)])
    monkeypatch.setattr(bt, "clip_retrieval", lambda *a, **kw: 0.42)
    monkeypatch.setattr(bt, "zero_shot_fmnist", lambda t2i, fmnist: {"es": 0.61, "en": 0.55})
    result = bt.benchmark_t2i("run", "ver", n=4, steps=2, out=tmp_path, progress=False)
    rows = {r["measure"]: (r["value"], r["note"]) for r in result["rows"]}
    names = {"seen": "one item, seen combinations", "held": "one item, held-out combinations",
             "two": "two items, seen combinations"}
    for key, name in names.items():
        exact, items, colours = fid[True, key]
        assert rows[f"caption fidelity, {name}"][0] == exact
        assert f"relative to the verifier {exact / ver[key]:.3f}" in rows[f"caption fidelity, {name}"][1]
        assert f"items {items:.3f}, colours {colours:.3f}" in rows[f"caption fidelity, {name}"][1]
        assert rows[f"verifier on the real scenes of those captions ({name})"][0] == ver[key]
        assert rows[f"random baseline ({name})"][0] == pytest.approx(1 / 60 if key != "two" else 1 / 3600)
    for key in ("seen", "held"):
        assert rows[f"ablation: decoder on the text embedding, no prior ({names[key]})"][0] == fid[False, key][0]
    assert rows["CLIP top-1 caption retrieval among 100 (test scenes)"][0] == 0.42
    assert [v for m, (v, _) in rows.items() if m.startswith("CLIP zero-shot")] == [0.61, 0.55]
    assert len(rows) == 3 * 3 + 2 + 1 + 2
    table = (tmp_path / "table.md").read_text()
    assert "| caption fidelity, one item, seen combinations | 50.00% |" in table
    assert "| random baseline (two items, seen combinations) | 0.03% |" in table
    assert json.loads((tmp_path / "table.json").read_text())["rows"] == result["rows"]


def test_load_and_predict_draw_captions(runs, tmp_path, capsys):
    import nanofm
    from PIL import Image

    t2i = nanofm.load(runs / "unclip", device="cpu")
    assert isinstance(t2i, TextToImage)
    captions = ["un vestido rojo", "a blue bag"]
    a = t2i(captions, steps=3, prior_steps=3, seed=0)
    b = TextToImage.load(runs / "unclip")(captions, steps=3, prior_steps=3, seed=0)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b)  # the same pipeline, seeded alike
    assert not torch.equal(a, t2i(captions, steps=3, prior_steps=3, seed=1))  # the seed is used
    out = tmp_path / "p.png"
    assert main(["predict", str(runs / "unclip"), *captions, "--steps", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}" and Image.open(out).size[0] > 60
    with pytest.raises(Exception, match="a 'scene-verifier' run has no predictor"):
        nanofm.load(runs / "verifier")
