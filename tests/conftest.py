import os

# One small KV cache for every vLLM engine built in the test session (in-process engines
# cannot share the gpu_memory_utilization fraction; see README).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
