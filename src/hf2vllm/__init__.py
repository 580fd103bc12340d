"""hf2vllm: move inference from Hugging Face Transformers to vLLM, and prove the move kept results.

Story of the package, in the order data flows:
``requests`` (prompts in) -> ``backends`` (HF, offline vLLM, OpenAI server) -> ``parity`` (compare and
explain) -> ``report`` (terminal, JSON, HTML). ``spec`` translates generation settings between the two
worlds; ``deploy``, ``bench`` and ``doctor`` cover serving, speed and source-code checks.
"""

__version__ = "0.1.0"
