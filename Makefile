# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(if $(FLAWSCOPE_DATA),$(FLAWSCOPE_DATA),../shared/datasets)
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench bench-quality lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first: pinned, and taken from this machine's local wheels when present.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/flawscope demo --out demo-out

# The whole suite (a few minutes on 2 cores); tests marked slow (> ~20 s each, e.g. 2-process DDP) included.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Quick iteration: everything but the slow tests.
test-fast: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --data $(DATA) --out bench-out

# The long issue-9 measurement (GDXray castings, unseen series): about 50 min on 2 cores (estimated from its parts:
# 15 runs of 2-3 min, ~10 min of scoring; never timed end to end), see docs/benchmarks.md.
QOUT ?= bench-quality
QSTUDY := $(BIN)/flawscope study recipes --data $(QOUT)/xd32/manifest.csv --model resnet18 --input-size 32 \
	--epochs 15 --folds 3 --set resize=false --set optimizer=adamw --set lr=0.001 --set batch_size=50 \
	--set augment=flips --threads 2 --quiet --out $(QOUT)/study
bench-quality: $(STAMP)
	$(BIN)/flawscope data patches $(DATA)/gdxray-castings --xdefects --size 32 --seed 0 --out $(QOUT)/xd32/manifest.csv
	$(BIN)/flawscope data patches $(DATA)/gdxray-castings --xdefects --size 32 --seed 0 --hard-ok-per-image 4 \
		--out $(QOUT)/xd32h/manifest.csv
	$(QSTUDY) --recipe 'flips:' --recipe 'radiograph: augment=radiograph' \
		--recipe 'standardize: normalize=standardize,augment=radiograph' \
		--recipe 'std+hard: normalize=standardize,augment=radiograph,extra_train=$(QOUT)/xd32h/manifest.csv' \
		--recipe 'std+hard+group: normalize=standardize,augment=radiograph,extra_train=$(QOUT)/xd32h/manifest.csv,oversample=group'
	$(BIN)/python -m benchmarks.unseen_series --study $(QOUT)/study --patches $(QOUT)/xd32/manifest.csv \
		--images $(DATA)/gdxray-castings --out $(QOUT)/unseen --whole "flips,standardize,std+hard,std+hard+group" \
		--tta "standardize,std+hard+group" --overlap 8 --threads 2

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo-out bench-out bench-quality
