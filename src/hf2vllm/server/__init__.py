"""The served path: launching ``vllm serve`` and talking to OpenAI-compatible servers."""
