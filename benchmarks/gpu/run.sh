#!/usr/bin/env bash
# Run ON THE GPU MACHINE (device tool, carry [".whl"], timeout_s ~540): installs the carried wheels
# and scas_hub into /tmp/site, then benchmarks a Qwen2.5-1.5B-shaped random student (real Qwen
# tokenizer) in bfloat16 with both attention layouts, against the naive algorithm on the same GPU.
# Output: $OUT/bench.log. Sizes fit the device budget (~15 min per session, start included).
set -eo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target /tmp/site .
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "${OUT:-.}/bench.log"
cd benchmarks
python3 bench_scoring.py --device cuda --student random:qwen2.5-1.5b --dtypes bfloat16 --engines sdpa,sdpa+compile,flex,flex+compile \
    --questions "${QUESTIONS:-48}" --chunks 3 --repeat 2 --scale "${SCALE:-4}" 2>&1 | tee -a "${OUT:-.}/bench.log"
