"""Vision-language parity: image requests, the shared prompt path, input identity and image-token cost.

- ``images``: image parts in chat messages (OpenAI ``image_url`` with ``file://``/``data:`` URLs, Qwen
  ``{"type": "image", "image": PATH}``), resolved to local images; network URLs are refused.
- ``placeholders``: the processor's own image tokens (family-agnostic) and hand-typed placeholder checks.
- ``prepare``: the ONE path that renders a VL prompt through ``processor.apply_chat_template`` and
  gives each backend its inputs.
- ``identity``: proves both backends see the same expanded token sequence and pixel grid.
- ``budget``: image tokens per image from processor settings and image size.
- ``tiny_vl``: builds small random-weight VL checkpoints with their real processor classes.
"""
