"""Benchmarks a migration decision can rest on: HF vs vLLM offline, a served load generator, decay, A/B.

Modules, one concern each: ``schema`` (the typed report, the truth every output renders), ``metrics``
(pure statistics), ``offline`` (HF and vLLM modes in one run), ``decay`` (throughput per output position),
``serve`` (load profiles against an OpenAI-compatible server), ``crosscheck`` (against ``vllm bench
serve``), ``compare_runs`` (A/B with a noise verdict) and ``outputs`` (JSON, CSV, terminal, HTML, markdown).
"""
