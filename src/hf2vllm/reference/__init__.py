"""Record the reference once, check every later change against it.

``record`` runs the HF reference and writes a reference directory (``schema``: manifest + journaled
answers, ``fingerprint``: content hashes of model, tokenizer, template and prompts); ``against`` checks a
later run is the recorded one and feeds the record to ``compare`` as its reference side
(``backends.recorded``).
"""
