import os

# One small KV cache for every vLLM engine built in the test session (in-process engines
# cannot share the gpu_memory_utilization fraction; see README).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from engine.models import DEFAULT_POLICY, DEFAULT_PRM


# One engine of each kind for the whole session: vLLM start-up is the expensive part.
@pytest.fixture(scope="session")
def policy():
    from engine import Policy

    return Policy(DEFAULT_POLICY)


@pytest.fixture(scope="session")
def vllm_prm():
    from engine import VLLMPRM

    return VLLMPRM(DEFAULT_PRM)


@pytest.fixture(scope="session")
def hf_prm():
    from engine import HFPRM

    return HFPRM(DEFAULT_PRM)
