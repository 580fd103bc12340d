"""Served benchmark: load profiles (closed-loop concurrency, open-loop Poisson with burstiness) against
any OpenAI-compatible server, through ``hf2vllm.server.client``. See ``runner`` for the entry point."""
