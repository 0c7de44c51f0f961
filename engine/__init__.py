"""The engine: a vLLM policy that proposes reasoning steps and a PRM that scores them."""

import os

# Run vLLM in-process by default: on small CPU machines it starts faster, generates faster
# and samples reproducibly under the engine seed (see README). Set it to 1 to opt out.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
