# One entry point for every stage. `make help` lists the targets and their variables.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= data
# crawl: which spiders and against which site (the real sites by default; a mirror URL for offline work)
SPIDERS ?= soundbible bigsoundbank
SOUNDBIBLE_URL   ?= https://soundbible.com
BIGSOUNDBANK_URL ?= https://bigsoundbank.com
# crawl: set REPLAY to a published-format CSV to replay it instead of crawling the sites
REPLAY  ?=
CRAWL_ARGS ?=
# curate
CURATE_ARGS ?=
# train / eval
CONFIG  ?= configs/tiny.json
CHECKPOINT ?=
EVAL_ARGS ?=
PYTEST_ARGS ?=
# data: the paper's three datasets (make data); SOURCES holds what wt5k-fetch downloads before curation
SOURCES ?= $(DATA)/sources
CLOTHO_VERSION ?= v2.1
CLOTHO_ARGS ?=
AUDIOCAPS_ARGS ?=
# options of wt5k-curate audiocaps and clotho in make data (CURATE_ARGS goes to wt5k-curate run)
CONVERT_ARGS ?=
PUBLISHED ?= manifests/wavtext5k_published.csv
CLOTHO_DIR = $(SOURCES)/clotho/$(CLOTHO_VERSION)
AUDIOCAPS_DIR = $(SOURCES)/audiocaps/v1
GPU_CHECK_ARGS ?=
# weights: which published pretrained files to fetch (wt5k-weights list names them all) and where
WEIGHTS ?= cnn14 roberta-base
WEIGHTS_DIR ?= $(DATA)/pretrained

.PHONY: help setup crawl mirror curate stats train check eval test bench demo weights data gpu-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s "$$(printf '\t')"
	@echo
	@echo "Variables: DATA=$(DATA) SPIDERS='$(SPIDERS)' REPLAY=<csv> SOUNDBIBLE_URL BIGSOUNDBANK_URL CRAWL_ARGS CURATE_ARGS"
	@echo "  MANIFEST (stats) CONFIG=$(CONFIG) CHECKPOINT EVAL_ARGS PYTEST_ARGS GPU_CHECK_ARGS WEIGHTS='$(WEIGHTS)' WEIGHTS_DIR=$(WEIGHTS_DIR)"
	@echo "  data: SOURCES=$(SOURCES) CLOTHO_VERSION=$(CLOTHO_VERSION) CLOTHO_ARGS AUDIOCAPS_ARGS CONVERT_ARGS PUBLISHED=$(PUBLISHED)"

# constraints.txt pins what the package leaves as ranges (torch's CPU build) for the tested environment.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench,reference]'
	touch $@

# The released CLAP models' own code, for tests/test_released.py. Without their dependencies: those pull
# torchaudio/torchvision (and a CUDA torch); the tests import only the model modules (librosa, in the
# `reference` extra, is what torchlibrosa needs).
REFERENCE_PKGS := msclap==1.3.4 laion-clap==1.1.7 torchlibrosa==0.1.0
$(BIN)/.reference: $(BIN)/.installed Makefile
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt $(REFERENCE_PKGS)
	touch $@

setup: $(BIN)/.installed $(BIN)/.reference  ## create .venv and install the project with its test extras (idempotent)

crawl: setup  ## crawl the sites into $(DATA)/raw/<spider>/ (REPLAY=<csv> replays a published manifest)
ifeq ($(strip $(REPLAY)),)
	$(BIN)/wt5k-crawl --out $(DATA)/raw --url soundbible=$(SOUNDBIBLE_URL) --url bigsoundbank=$(BIGSOUNDBANK_URL) $(CRAWL_ARGS) $(SPIDERS)
else
	$(BIN)/wt5k-crawl --out $(DATA)/raw --replay $(REPLAY) $(CRAWL_ARGS) manifest
endif

mirror: setup  ## serve the offline mirror of both sites on loopback
	$(BIN)/wt5k-mirror

curate: setup  ## curate $(DATA)/raw into $(DATA)/curated (manifest, rejects, stats, figures)
	$(BIN)/wt5k-curate run --raw $(DATA)/raw --out $(DATA)/curated $(CURATE_ARGS)

stats: setup  ## Table 1 statistics: make stats MANIFEST=<manifest, published CSV or AudioCaps/Clotho caption CSVs>
	$(BIN)/wt5k-curate stats $(MANIFEST)

train: setup  ## train CLAP from a config: make train CONFIG=configs/tiny.json
	$(BIN)/wt5k-train --config $(CONFIG)

check: setup  ## list what a run needs and every problem, loading nothing: make check CONFIG=configs/exp_D.json
	$(BIN)/wt5k-train --config $(CONFIG) --check

eval: setup  ## evaluate a checkpoint: make eval CHECKPOINT=runs/<name>/best.pt
	$(BIN)/wt5k-eval --checkpoint $(CHECKPOINT) $(EVAL_ARGS)

test: setup  ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup  ## run the benchmarks (crawl speed, curation throughput, training and metric speed, search)
	$(BIN)/python -m benchmarks.run

demo: setup  ## offline end to end: mirror -> crawl -> curate -> train -> eval -> search
	$(BIN)/python -m demo --out $(DATA)/demo

# Each step resumes: run it again after an interruption. AudioCaps is never complete (clips leave YouTube):
# wt5k-fetch's exit 1 (some clips failed, each recorded) does not stop the rest; exit 2/3 (bad input, 429s) does.
data: setup  ## the paper's data: fetch Clotho + AudioCaps, replay WavText5K, curate all three, print coverage vs the paper
	$(BIN)/python -m crawler.fetch.cli clotho --out $(SOURCES) --version $(CLOTHO_VERSION) $(CLOTHO_ARGS)
	$(BIN)/python -m crawler.fetch.cli audiocaps --out $(SOURCES) $(AUDIOCAPS_ARGS) || test $$? -eq 1
	$(BIN)/python -m crawler.cli --out $(DATA)/raw --replay $(PUBLISHED) $(CRAWL_ARGS) manifest
	$(BIN)/python -m curation.cli run --raw $(DATA)/raw --out $(DATA)/curated $(CURATE_ARGS)
	$(BIN)/python -m curation.cli audiocaps --csv train=$(AUDIOCAPS_DIR)/train.csv --csv val=$(AUDIOCAPS_DIR)/val.csv \
	  --csv test=$(AUDIOCAPS_DIR)/test.csv --clips $(AUDIOCAPS_DIR)/clips --out $(DATA)/audiocaps $(CONVERT_ARGS)
	$(BIN)/python -m curation.cli clotho --split train $(CLOTHO_DIR)/clotho_captions_development.csv $(CLOTHO_DIR)/development \
	  --split val $(CLOTHO_DIR)/clotho_captions_validation.csv $(CLOTHO_DIR)/validation \
	  --split test $(CLOTHO_DIR)/clotho_captions_evaluation.csv $(CLOTHO_DIR)/evaluation --out $(DATA)/clotho $(CONVERT_ARGS)
	$(BIN)/python -m crawler.fetch.cli coverage --data $(DATA)

gpu-check: setup  ## Exp D at real size on the GPUs: fp16/bf16 speed and memory, torchrun, kill -9 + --resume (GPU_CHECK_ARGS=--cpu-smoke: tiny, on CPU)
	$(BIN)/python -m training.gpu_check $(GPU_CHECK_ARGS)

weights: setup  ## download and check pretrained files where the paper configs look: make weights WEIGHTS="cnn14 roberta-base"
	$(BIN)/wt5k-weights fetch $(WEIGHTS) --dir $(WEIGHTS_DIR)

clean:  ## remove generated data and runs (not the venv)
	rm -rf $(DATA) runs bench_out
