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
# weights: which published pretrained files to fetch (wt5k-weights list names them all) and where
WEIGHTS ?= cnn14 roberta-base
WEIGHTS_DIR ?= $(DATA)/pretrained

.PHONY: help setup crawl mirror curate stats train eval test bench demo weights clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s "$$(printf '\t')"
	@echo
	@echo "Variables: DATA=$(DATA) SPIDERS='$(SPIDERS)' REPLAY=<csv> SOUNDBIBLE_URL BIGSOUNDBANK_URL CONFIG=$(CONFIG) CHECKPOINT"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,reference]'
	touch $@

# The released CLAP models' own code, for tests/test_released.py. Without their dependencies: those pull
# torchaudio/torchvision (and a CUDA torch); the tests import only the model modules (librosa, in the
# `reference` extra, is what torchlibrosa needs).
REFERENCE_PKGS := msclap==1.3.4 laion-clap==1.1.7 torchlibrosa==0.1.0
$(BIN)/.reference: $(BIN)/.installed Makefile
	$(BIN)/python -m pip install -q --no-deps $(REFERENCE_PKGS)
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

eval: setup  ## evaluate a checkpoint: make eval CHECKPOINT=runs/<name>/best.pt
	$(BIN)/wt5k-eval --checkpoint $(CHECKPOINT) $(EVAL_ARGS)

test: setup  ## run the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup  ## run the benchmarks (crawl speed, curation throughput, training and metric speed, search)
	$(BIN)/python -m benchmarks.run

demo: setup  ## offline end to end: mirror -> crawl -> curate -> train -> eval -> search
	$(BIN)/python -m demo --out $(DATA)/demo

weights: setup  ## download and check pretrained files where the paper configs look: make weights WEIGHTS="cnn14 roberta-base"
	$(BIN)/wt5k-weights fetch $(WEIGHTS) --dir $(WEIGHTS_DIR)

clean:  ## remove generated data and runs (not the venv)
	rm -rf $(DATA) runs bench_out
