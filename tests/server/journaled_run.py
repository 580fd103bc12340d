"""Child process of the resume tests: one journaled server run, as `compare` makes it.

usage: python journaled_run.py BASE_URL JOURNAL SPEC_JSON LIMIT CONCURRENCY MAX_RETRIES
"""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    from hf2vllm.backends.base import create_backend
    from hf2vllm.models import bundled_model_path
    from hf2vllm.parity.run import CompareOptions, load_tokenizer, prepare_prompt_set
    from hf2vllm.spec import GenerationSpec

    base_url, journal, spec_json, limit, concurrency, retries = sys.argv[1:7]
    model = bundled_model_path()
    requests = prepare_prompt_set(CompareOptions(max_new_tokens=64), model, load_tokenizer(model))[: int(limit)]
    spec = GenerationSpec(**json.loads(spec_json))
    backend = create_backend("server", base_url=base_url, journal=journal, resume=True,
                             max_concurrency=int(concurrency), max_retries=int(retries), backoff_initial_s=0.2,
                             backoff_max_s=1.0, timeout_s=120)
    backend.generate(requests, spec)
    print(json.dumps(backend.describe()["client"]))
