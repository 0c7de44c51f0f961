"""The engine: a vLLM policy that proposes reasoning steps and a PRM that scores them."""

import os

# CPU defaults, set before vLLM is imported; set either variable yourself to override.
# In-process engine: on small CPU machines it starts faster, generates faster and samples
# reproducibly under the engine seed (see README).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
# KV cache of each CPU engine, in GiB. vLLM's default fraction of memory fails here, and two
# engines in one process (policy + PRM) cannot share a fraction. Ignored on GPUs.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# vLLM's per-engine INFO lines drown the progress bars; set VLLM_LOGGING_LEVEL=INFO to see them.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from engine.format import ARITH_FORMAT, StepFormat  # noqa: E402
from engine.policy import EngineConfig, Policy, PromptTooLongError  # noqa: E402
from engine.prm import HFPRM, VLLMPRM, VLLMClassifierPRM  # noqa: E402
from engine.types import Completions, Cost, Proposals, Scores, Step, StepPath  # noqa: E402

__all__ = ["ARITH_FORMAT", "StepFormat", "EngineConfig", "Policy", "PromptTooLongError", "HFPRM", "VLLMPRM", "VLLMClassifierPRM",
           "Completions", "Cost", "Proposals", "Scores", "Step", "StepPath"]
