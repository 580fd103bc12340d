"""Deployment planning and monitoring: KV-cache maths as vLLM counts it, the serve plan, presets,
calibration against a real engine, and advice from a running server's metrics and logs.

Modules are small and pure where they can be: ``architecture`` reads a config.json, ``kv_cache``
and ``weights`` do the arithmetic, ``plan`` and ``presets`` decide, ``calibrate`` and ``monitor``
talk to vLLM.
"""
