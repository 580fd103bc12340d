"""Pooling parity: hidden states, sequence embeddings, probe heads and LoRA adapters on HF vs vLLM.

The failures this package exists for raise no error on their own: vLLM's pooling runner
L2-normalises by default, a probe trained on raw hidden states then flips; a LoRA adapter whose keys
do not match vLLM's module names is silently skipped. Each check here turns one of them into a
measured number and, where it matters, a loud error naming the setting to change.
"""
