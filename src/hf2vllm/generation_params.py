"""The classification of every generation parameter of the pinned Transformers and vLLM versions.

Each Transformers ``GenerationConfig`` attribute and ``generate()`` argument, and each vLLM
``SamplingParams`` field, has one ``ParameterRule``: translated exactly, translated with a note, or
unsupported (with the nearest feature on the other side). ``GenerationSpec`` consults these tables, the
tests enumerate the *installed* libraries and fail on any parameter missing here, and
``docs/translation.md`` is rendered from them by ``render_translation_doc()`` so the docs cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

Side = Literal["GenerationConfig", "generate()", "SamplingParams", "hf2vllm"]


class Status(str, Enum):
    """How a parameter crosses from one library to the other."""

    EXACT = "exact"
    NOTE = "with note"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class ParameterRule:
    """How one parameter is translated, and why.

    ``neutral`` lists the values meaning "feature off": an unsupported parameter at a neutral value is
    accepted (it changes nothing). ``sampling_only``/``beam_only`` parameters are ignored by Transformers
    unless ``do_sample=True`` / ``num_beams>1``, so they are neutral outside that mode too.
    """

    name: str
    side: Side
    status: Status
    target: str
    why: str
    neutral: tuple[Any, ...] = (None,)
    sampling_only: bool = False
    beam_only: bool = False
    affects_tokens: bool = True

    def is_neutral(self, value: Any, *, do_sample: bool = False, num_beams: int = 1) -> bool:
        if self.sampling_only and not do_sample:
            return True
        if self.beam_only and num_beams <= 1:
            return True
        return any(value is None if n is None else value == n for n in self.neutral)


_LOGITS_PROCESSORS = "a custom vLLM logits processor (LLM(logits_processors=[...]), vLLM's v1 LogitsProcessor interface)"
_SPEC_DECODING = "vLLM speculative decoding (engine argument speculative_config)"
_NO_EFFECT = "changes how Transformers computes, not which tokens it produces; vLLM needs nothing"


def _r(name: str, side: Side, status: Status, target: str, why: str, **kw: Any) -> ParameterRule:
    return ParameterRule(name=name, side=side, status=status, target=target, why=why, **kw)


E, N, U = Status.EXACT, Status.NOTE, Status.UNSUPPORTED
GC: Side = "GenerationConfig"
GEN: Side = "generate()"

HF_RULES: dict[str, ParameterRule] = {
    r.name: r
    for r in [
        # --- length
        _r("max_new_tokens", GC, E, "max_tokens", "Same count of generated tokens, prompt excluded."),
        _r("max_length", GC, N, "max_tokens = max_length - prompt length",
           "Counts the prompt. Set explicitly (by you or generation_config.json) it becomes a per-prompt "
           "max_tokens; left unset, Transformers' default max_length=20 means 20 *new* tokens "
           "(5.x `_prepare_generated_length`), capped at max_position_embeddings."),
        _r("min_new_tokens", GC, N, "min_tokens",
           "Both block the stop tokens until N tokens exist. vLLM also blocks the tokenizer's eos and the "
           "generation_config eos ids and ignores stop strings for those N tokens; identical when those ids "
           "are in the eos list (the normal case)."),
        _r("min_length", GC, N, "min_tokens = min_length - prompt length",
           "Counts the prompt (default 0 = off); becomes a per-prompt min_tokens."),
        _r("max_time", GC, U, "-", "No time budget per request in vLLM; nearest: a client-side timeout "
           "or aborting the request (AsyncLLM.abort / closing the HTTP stream)."),
        _r("stop_strings", GC, N, "stop + include_stop_str_in_output=True",
           "Both stop on the token that completes the string and keep it in the output tokens. vLLM matches "
           "the detokenized output text only; Transformers also matches a string straddling the prompt end, "
           "and generate() needs tokenizer=... to use it."),
        _r("early_stopping", GC, N, "-", "Beam search only; no effect with num_beams=1.",
           neutral=(None, False), beam_only=True),
        # --- strategy
        _r("do_sample", GC, E, "temperature",
           "do_sample=False is greedy: vLLM temperature=0. do_sample=True keeps the temperature."),
        _r("num_beams", GC, U, "-", "Nearest: vLLM beam search, a separate API: LLM.beam_search(prompts, "
           "BeamSearchParams(beam_width=..., max_tokens=..., length_penalty=...)).", neutral=(None, 1)),
        _r("use_mtp", GC, N, "-", "Multi-token prediction is speculative decoding: output-preserving for "
           f"greedy; nearest: {_SPEC_DECODING} with method 'mtp'.", neutral=(None, False)),
        # --- cache / performance
        _r("use_cache", GC, N, "-", _NO_EFFECT + " (vLLM always uses its paged KV cache).", affects_tokens=False),
        _r("cache_implementation", GC, N, "-", _NO_EFFECT + ".", affects_tokens=False),
        _r("cache_config", GC, N, "-", _NO_EFFECT + ".", affects_tokens=False),
        _r("max_cache_len", GC, N, "-", _NO_EFFECT + ".", affects_tokens=False),
        _r("compile_config", GC, N, "-", _NO_EFFECT + " (vLLM: compilation_config / enforce_eager).",
           affects_tokens=False),
        _r("disable_compile", GC, N, "-", _NO_EFFECT + ".", affects_tokens=False),
        _r("prefill_chunk_size", GC, N, "-", _NO_EFFECT + " (vLLM: enable_chunked_prefill).", affects_tokens=False),
        _r("low_memory", GC, N, "-", _NO_EFFECT + " (deprecated in Transformers).", affects_tokens=False),
        _r("continuous_batching_config", GC, N, "-", _NO_EFFECT + " (vLLM batches continuously anyway).",
           affects_tokens=False),
        # --- logits manipulation
        _r("temperature", GC, E, "temperature",
           "Same scaling before top-k/top-p/min-p. vLLM accepts (0, 2] and raises values below 0.01 to 0.01.",
           sampling_only=True),
        _r("top_k", GC, E, "top_k", "Transformers' default is top_k=50 (vLLM's is off): the translation always "
           "states it; None or 0 means off (vLLM -1).", sampling_only=True),
        _r("top_p", GC, E, "top_p", "Same nucleus filter on the top-k-filtered distribution; vLLM needs "
           "top_p in (0, 1].", sampling_only=True),
        _r("min_p", GC, N, "min_p", "Same threshold (min_p x top probability). vLLM filters min_p before "
           "top-p, Transformers after: identical unless min_p>0 and top_p<1 are combined.", sampling_only=True),
        _r("top_h", GC, U, "-", "Entropy-budget truncation has no vLLM equivalent; nearest: top_p/min_p or "
           + _LOGITS_PROCESSORS + ".", sampling_only=True),
        _r("typical_p", GC, U, "-", "Locally typical sampling has no vLLM equivalent; nearest: top_p or "
           + _LOGITS_PROCESSORS + ".", neutral=(None, 1.0), sampling_only=True),
        _r("epsilon_cutoff", GC, U, "-", "Absolute probability cutoff has no vLLM equivalent; nearest: min_p "
           "(relative cutoff) or " + _LOGITS_PROCESSORS + ".", neutral=(None, 0.0), sampling_only=True),
        _r("eta_cutoff", GC, U, "-", "Eta sampling has no vLLM equivalent; nearest: min_p or "
           + _LOGITS_PROCESSORS + ".", neutral=(None, 0.0), sampling_only=True),
        _r("repetition_penalty", GC, E, "repetition_penalty",
           "Same CTRL formula (divide positive logits, multiply negative ones) over prompt and output tokens."),
        _r("encoder_repetition_penalty", GC, U, "-", "Rewards prompt tokens; vLLM has no such term. Nearest: "
           "repetition_penalty < 1 (applies to output tokens too) or " + _LOGITS_PROCESSORS + ".",
           neutral=(None, 1.0)),
        _r("length_penalty", GC, N, "-", "Beam search only; no effect with num_beams=1 (vLLM: "
           "BeamSearchParams.length_penalty).", neutral=(None, 1.0), beam_only=True),
        _r("no_repeat_ngram_size", GC, U, "-", "vLLM cannot block repeated n-grams; nearest: "
           + _LOGITS_PROCESSORS + " (vLLM's repetition_detection stops generation instead of blocking).",
           neutral=(None, 0)),
        _r("bad_words_ids", GC, N, "logit_bias {id: -100}",
           "Single-token entries become logit_bias -100 (vLLM's floor; Transformers uses -inf: the same "
           "tokens unless a logit beats all others by 100). Entries equal to an eos id are dropped, as "
           "Transformers does. Multi-token entries are unsupported: vLLM's bad_words takes strings and "
           "re-tokenizes them with and without a leading space."),
        _r("renormalize_logits", GC, N, "-", "Only rescales the returned scores, never the sampled tokens.",
           neutral=(None, False, True), affects_tokens=False),
        _r("forced_bos_token_id", GC, U, "-", "vLLM cannot force the first generated token; nearest: append "
           "the token to the prompt, or structured outputs (structured_outputs=StructuredOutputsParams(...))."),
        _r("forced_eos_token_id", GC, U, "-", "vLLM cannot force the last token at max length; nearest: "
           + _LOGITS_PROCESSORS + "."),
        _r("remove_invalid_values", GC, N, "-", "Replaces NaN/inf logits; no effect on a healthy model "
           "(vLLM has no such switch).", neutral=(None, False, True), affects_tokens=False),
        _r("exponential_decay_length_penalty", GC, U, "-", "Length-dependent eos boost has no vLLM "
           "equivalent; nearest: " + _LOGITS_PROCESSORS + "."),
        _r("suppress_tokens", GC, N, "logit_bias {id: -100}",
           "Suppressed at every step: logit_bias -100, vLLM's floor (Transformers uses -inf)."),
        _r("begin_suppress_tokens", GC, U, "-", "vLLM cannot suppress tokens at the first step only; "
           "nearest: logit_bias (every step) or " + _LOGITS_PROCESSORS + "."),
        _r("sequence_bias", GC, N, "logit_bias",
           "Single-token sequences become logit_bias (clamped by vLLM to [-100, 100]); multi-token "
           "sequences are unsupported (nearest: " + _LOGITS_PROCESSORS + ")."),
        _r("token_healing", GC, U, "-", "vLLM does not heal prompt tokens; nearest: fix the prompt's last "
           "token before sending it.", neutral=(None, False)),
        _r("guidance_scale", GC, U, "-", "Classifier-free guidance has no vLLM equivalent; nearest: "
           + _LOGITS_PROCESSORS + " with a second (negative-prompt) request.", neutral=(None, 1, 1.0)),
        _r("watermarking_config", GC, U, "-", "Transformers' watermark algorithms differ from vLLM's; "
           "nearest: vLLM's engine-level watermarking (SamplingParams.watermarking)."),
        # --- outputs
        _r("num_return_sequences", GC, N, "n", "Same count of samples per prompt; the samples match in "
           "distribution, not token for token. Transformers refuses n>1 without sampling or beams.",
           neutral=(None, 1)),
        _r("output_attentions", GC, U, "-", "vLLM never returns attention weights; nearest: run the "
           "Transformers model for that analysis.", neutral=(None, False), affects_tokens=False),
        _r("output_hidden_states", GC, U, "-", "vLLM's generate path returns no hidden states; nearest: "
           "vLLM's pooling runner (LLM(..., runner='pooling').encode).", neutral=(None, False),
           affects_tokens=False),
        _r("output_scores", GC, N, "logprobs", "Transformers returns processed scores for the whole vocabulary; "
           "vLLM returns top-`logprobs` log-probabilities, raw by default (engine logprobs_mode="
           "'processed_logprobs' for processed ones; at most max_logprobs=20 unless raised).",
           neutral=(None, False), affects_tokens=False),
        _r("output_logits", GC, N, "logprobs", "Raw logits in Transformers; vLLM returns raw log-probabilities "
           "(engine logprobs_mode='raw_logits' for logits).", neutral=(None, False), affects_tokens=False),
        _r("return_dict_in_generate", GC, N, "-", "Output structure only; vLLM always returns RequestOutput.",
           neutral=(None, False, True), affects_tokens=False),
        # --- special tokens
        _r("pad_token_id", GC, N, "-", "vLLM never pads a request; no effect on one prompt's tokens.",
           affects_tokens=False),
        _r("bos_token_id", GC, N, "-", "Only used when generate() gets no prompt; hf2vllm always sends the "
           "prompt's token ids.", affects_tokens=False),
        _r("eos_token_id", GC, E, "stop_token_ids + ignore_eos=True",
           "The full eos list (int or list, from generate() or generation_config.json) becomes "
           "stop_token_ids, and ignore_eos=True stops vLLM adding the tokenizer's eos on its own."),
        # --- encoder-decoder
        _r("encoder_no_repeat_ngram_size", GC, U, "-", "Blocks prompt n-grams in the output; no vLLM "
           "equivalent. Nearest: " + _LOGITS_PROCESSORS + ".", neutral=(None, 0)),
        _r("decoder_start_token_id", GC, N, "-", "Encoder-decoder models only; decoder-only generation "
           "ignores it.", affects_tokens=False),
        # --- assisted generation
        _r("is_assistant", GC, N, "-", "Marks a draft model; " + _NO_EFFECT + ".", affects_tokens=False),
        _r("num_assistant_tokens", GC, N, "-", "Speculation length: " + _SPEC_DECODING +
           " (num_speculative_tokens).", affects_tokens=False),
        _r("num_assistant_tokens_schedule", GC, N, "-", "Speculation schedule: " + _SPEC_DECODING + ".",
           affects_tokens=False),
        _r("assistant_confidence_threshold", GC, N, "-", "Draft early exit: " + _SPEC_DECODING + ".",
           affects_tokens=False),
        _r("prompt_lookup_num_tokens", GC, N, "-", "Prompt-lookup decoding is output-preserving; vLLM: "
           "speculative_config={'method': 'ngram', 'num_speculative_tokens': N}."),
        _r("max_matching_ngram_size", GC, N, "-", "vLLM: speculative_config prompt_lookup_max.",
           affects_tokens=False),
        _r("assistant_early_exit", GC, N, "-", "Self-speculation; " + _SPEC_DECODING + "."),
        _r("assistant_lookbehind", GC, N, "-", "Universal assisted generation detail; " + _SPEC_DECODING
           + ".", affects_tokens=False),
        _r("target_lookbehind", GC, N, "-", "Universal assisted generation detail; " + _SPEC_DECODING + ".",
           affects_tokens=False),
        _r("assistant_ensemble_weight", GC, U, "-", "Mixes draft and target distributions (lossy); vLLM's "
           "speculative decoding is lossless. Nearest: " + _SPEC_DECODING + "."),
        _r("speculation_type", GC, N, "-", "Speculation method; " + _SPEC_DECODING + " (method=...).",
           affects_tokens=False),
        # --- deprecated decoding strategies (moved to the Hub by Transformers)
        _r("penalty_alpha", GC, U, "-", "Contrastive search has no vLLM equivalent; nearest: "
           + _LOGITS_PROCESSORS + ".", neutral=(None, 0, 0.0)),
        _r("dola_layers", GC, U, "-", "DoLa (contrasting early-layer logits) has no vLLM "
           "equivalent; nearest: plain greedy or sampling in vLLM, or keep this step in Transformers."),
        _r("diversity_penalty", GC, U, "-", "Group beam search only; nearest: LLM.beam_search.",
           neutral=(None, 0, 0.0)),
        _r("num_beam_groups", GC, U, "-", "Group beam search; nearest: LLM.beam_search.", neutral=(None, 1)),
        _r("constraints", GC, U, "-", "Constrained beam search; nearest: vLLM structured outputs "
           "(StructuredOutputsParams(regex=/choice=/grammar=))."),
        _r("force_words_ids", GC, U, "-", "Forced words; nearest: vLLM structured outputs "
           "(StructuredOutputsParams(regex=...))."),
        # --- generate() arguments that are not GenerationConfig attributes
        _r("inputs", GEN, N, "prompt_token_ids", "The prompt, not a setting: hf2vllm sends both backends the "
           "same token ids.", affects_tokens=False),
        _r("generation_config", GEN, N, "-", "A GenerationConfig replaces the model's as the base; give its "
           "fields as kwargs or as --generation-config.", affects_tokens=False),
        _r("logits_processor", GEN, U, "-", "Custom Python processors do not travel; nearest: "
           + _LOGITS_PROCESSORS + ".", neutral=(None, [])),
        _r("stopping_criteria", GEN, U, "-", "Custom stopping criteria do not travel; nearest: stop / "
           "stop_token_ids, or aborting the request.", neutral=(None, [])),
        _r("prefix_allowed_tokens_fn", GEN, U, "-", "Nearest: vLLM structured outputs "
           "(StructuredOutputsParams) or allowed_token_ids."),
        _r("synced_gpus", GEN, N, "-", _NO_EFFECT + ".", neutral=(None, False, True), affects_tokens=False),
        _r("assistant_model", GEN, N, "-", "Assisted generation is output-preserving for greedy; nearest: "
           + _SPEC_DECODING + " with a draft model.", affects_tokens=False),
        _r("assistant_tokenizer", GEN, N, "-", "Draft tokenizer for assisted generation; " + _SPEC_DECODING
           + ".", affects_tokens=False),
        _r("streamer", GEN, N, "-", "Streaming only changes delivery; vLLM: AsyncLLM or stream=true.",
           affects_tokens=False),
        _r("negative_prompt_ids", GEN, U, "-", "Negative prompts for classifier-free guidance; no vLLM "
           "equivalent. Nearest: " + _LOGITS_PROCESSORS + "."),
        _r("negative_prompt_attention_mask", GEN, U, "-", "Negative prompts for classifier-free guidance; no "
           "vLLM equivalent. Nearest: " + _LOGITS_PROCESSORS + "."),
        _r("custom_generate", GEN, U, "-", "Custom decoding loops do not travel; nearest: "
           + _LOGITS_PROCESSORS + "."),
        _r("tokenizer", GEN, N, "-", "Needed by Transformers for stop_strings; vLLM uses the model's "
           "tokenizer.", affects_tokens=False),
        _r("trust_remote_code", GEN, N, "-", "Only for custom_generate repositories in generate().",
           neutral=(None, False, True), affects_tokens=False),
        _r("seed", "hf2vllm", N, "seed", "Not a generate() argument (Transformers: torch.manual_seed before "
           "generate). vLLM takes a per-request seed. Both are reproducible, but the random streams differ: "
           "sampled tokens agree in distribution, not token for token.", affects_tokens=False),
    ]
}
"""Every Transformers generation parameter (``GenerationConfig`` attributes, ``generate()`` arguments)."""

# Bookkeeping attributes of GenerationConfig that are not generation settings.
HF_METADATA_ATTRIBUTES = frozenset({"transformers_version", "_from_model_config", "_original_object_hash"})

SP: Side = "SamplingParams"
_HF_LOGITS = "a custom Transformers LogitsProcessor passed as generate(logits_processor=[...])"

VLLM_RULES: dict[str, ParameterRule] = {
    r.name: r
    for r in [
        _r("n", SP, N, "num_return_sequences", "Samples agree in distribution, not token for token; "
           "n>1 with temperature=0 is refused (Transformers rejects it).", neutral=(1,)),
        _r("presence_penalty", SP, U, "-", "Transformers has no additive presence penalty; nearest: "
           "repetition_penalty (multiplicative, prompt included) or " + _HF_LOGITS + ".", neutral=(0, 0.0)),
        _r("frequency_penalty", SP, U, "-", "Transformers has no frequency penalty; nearest: "
           "repetition_penalty or " + _HF_LOGITS + ".", neutral=(0, 0.0)),
        _r("repetition_penalty", SP, E, "repetition_penalty", "Same formula over prompt and output tokens."),
        _r("temperature", SP, E, "do_sample + temperature", "temperature < 1e-5 is greedy (do_sample=False)."),
        _r("watermarking", SP, N, "-", "Engine-level watermark toggle; off unless the engine has one.",
           neutral=(None, False, True), affects_tokens=False),
        _r("top_p", SP, E, "top_p", "Same nucleus filter."),
        _r("top_k", SP, E, "top_k", "0 or -1 (off) becomes top_k=None: Transformers would otherwise apply "
           "its default top_k=50."),
        _r("min_p", SP, N, "min_p", "Same threshold; order differs from top_p (see the Transformers side)."),
        _r("seed", SP, N, "seed", "Per-request seed; Transformers uses torch.manual_seed (different stream)."),
        _r("stop", SP, N, "stop_strings", "Transformers always keeps the stop string in the output tokens; "
           "include_stop_str_in_output=False only trims vLLM's text."),
        _r("stop_token_ids", SP, E, "eos_token_id", "Joined with the model's eos unless ignore_eos."),
        _r("ignore_eos", SP, E, "eos_token_id", "False adds the tokenizer's eos and generation_config eos ids "
           "to the eos list (vLLM's update_from_generation_config)."),
        _r("max_tokens", SP, E, "max_new_tokens", "None means up to max_model_len: max_length = max_model_len."),
        _r("min_tokens", SP, N, "min_new_tokens", "Transformers keeps checking stop strings during the first "
           "min_new_tokens; vLLM does not."),
        _r("logprobs", SP, N, "output_scores + return_dict_in_generate", "Transformers returns processed "
           "scores for the whole vocabulary.", affects_tokens=False),
        _r("prompt_logprobs", SP, U, "-", "generate() scores no prompt tokens; nearest: one forward pass "
           "model(input_ids).logits."),
        _r("prompt_logprob_token_ids", SP, U, "-", "Nearest: one forward pass model(input_ids).logits."),
        _r("prompt_logprob_start", SP, U, "-", "Nearest: one forward pass model(input_ids).logits."),
        _r("logprob_token_ids", SP, N, "output_scores", "Transformers returns scores for every token; pick "
           "these ids from them.", affects_tokens=False),
        _r("flat_logprobs", SP, N, "-", "Result layout only.", neutral=(False, True), affects_tokens=False),
        _r("detokenize", SP, N, "-", "Text decoding only.", neutral=(True, False), affects_tokens=False),
        _r("skip_special_tokens", SP, N, "-", "Text decoding only (tokenizer.decode(skip_special_tokens=...)).",
           neutral=(True, False), affects_tokens=False),
        _r("spaces_between_special_tokens", SP, N, "-", "Text decoding only.", neutral=(True, False),
           affects_tokens=False),
        _r("include_stop_str_in_output", SP, N, "-", "Text only: the tokens always include the stop string.",
           neutral=(True, False), affects_tokens=False),
        _r("output_kind", SP, N, "-", "Streaming delivery only.", affects_tokens=False),
        _r("stream_interval", SP, N, "-", "Streaming delivery only.", affects_tokens=False),
        _r("skip_clone", SP, N, "-", "Internal copy optimisation.", neutral=(False, True), affects_tokens=False),
        _r("structured_outputs", SP, U, "-", "Nearest: generate(prefix_allowed_tokens_fn=...) or an "
           "outlines/xgrammar logits processor."),
        _r("logit_bias", SP, N, "sequence_bias / suppress_tokens", "Bias <= -100 (vLLM's floor) becomes "
           "suppress_tokens; other biases become single-token sequence_bias."),
        _r("allowed_token_ids", SP, U, "-", "Nearest: generate(prefix_allowed_tokens_fn=lambda b, ids: "
           "allowed) or suppress_tokens listing the rest of the vocabulary."),
        _r("extra_args", SP, N, "-", "Only read by custom vLLM plugins/logits processors.", affects_tokens=False),
        _r("bad_words", SP, N, "bad_words_ids / suppress_tokens", "Tokenized as vLLM does (with and without a "
           "leading space, needs the tokenizer); single-token words become suppress_tokens."),
        _r("skip_reading_prefix_cache", SP, N, "-", "Cache behaviour only.", affects_tokens=False),
        _r("thinking_token_budget", SP, U, "-", "Reasoning budget; nearest: max_new_tokens or "
           + _HF_LOGITS + "."),
        _r("repetition_detection", SP, U, "-", "Stops on repeated n-grams; nearest: a custom Transformers "
           "StoppingCriteria (no_repeat_ngram_size blocks instead of stopping)."),
        _r("routed_experts_prompt_start", SP, N, "-", "MoE routing diagnostics only.", neutral=(0,),
           affects_tokens=False),
        _r("trace_decode_token_ids", SP, U, "-", "Replays fixed tokens; nearest: teacher forcing with one "
           "forward pass."),
    ]
}
"""Every user-settable vLLM ``SamplingParams`` field."""

# Fields vLLM sets itself (not inputs; see the comment "not supposed to be used as an input").
VLLM_INTERNAL_FIELDS = frozenset({"output_text_buffer_length", "_eos_token_id", "_all_stop_token_ids",
                                  "_watermarking_skipped", "_bad_words_token_ids"})

# vLLM SamplingParams defaults as of the pinned version; a test compares them with the installed
# ``SamplingParams()`` so that ``from_vllm`` needs no 30-second vLLM import at run time.
VLLM_DEFAULTS: dict[str, Any] = {
    "n": 1, "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
    "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "seed": None, "stop": None,
    "stop_token_ids": None, "ignore_eos": False, "max_tokens": 16, "min_tokens": 0, "logprobs": None,
    "include_stop_str_in_output": False, "logit_bias": None, "bad_words": None,
}
VLLM_SAMPLING_EPS = 1e-5  # vLLM's _SAMPLING_EPS: below this temperature vLLM samples greedily.
VLLM_MIN_TEMPERATURE = 1e-2  # vLLM's _MAX_TEMP: 0 < temperature < 0.01 is raised to 0.01.
VLLM_MAX_TEMPERATURE = 2.0  # SamplingParams._verify_args rejects temperature > 2.
VLLM_LOGIT_BIAS_FLOOR = -100.0  # SamplingParams.from_optional (the OpenAI server) clamps bias to [-100, 100].
VLLM_DEFAULT_MAX_LOGPROBS = 20  # ModelConfig.max_logprobs default.


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_translation_doc() -> str:
    """The text of ``docs/translation.md``, generated from ``HF_RULES`` and ``VLLM_RULES``."""
    out: list[str] = [
        "Status: **exact** = same tokens; **with note** = same tokens under the stated condition, or no effect "
        "on tokens; **unsupported** = an error naming the parameter and the nearest feature on the other side, "
        "unless the value is neutral (e.g. `num_beams=1`, or `typical_p` with `do_sample=False`, which "
        "Transformers ignores).",
        "",
        "### Transformers -> vLLM",
        "",
        "| parameter | from | status | vLLM | why |",
        "|---|---|---|---|---|",
    ]
    for r in HF_RULES.values():
        out.append(f"| `{r.name}` | {r.side} | {r.status.value} | {_md_escape(r.target)} | {_md_escape(r.why)} |")
    out += [
        "",
        "### vLLM -> Transformers (`hf2vllm translate --vllm`)",
        "",
        "| SamplingParams field | status | Transformers | why |",
        "|---|---|---|---|",
    ]
    for r in VLLM_RULES.values():
        out.append(f"| `{r.name}` | {r.status.value} | {_md_escape(r.target)} | {_md_escape(r.why)} |")
    out.append("")
    return "\n".join(out)


DOC_BEGIN = "<!-- BEGIN GENERATED: hf2vllm.generation_params.render_translation_doc() -->"
DOC_END = "<!-- END GENERATED -->"


def generated_region(text: str) -> str:
    """The generated part of ``docs/translation.md`` (between the markers), or '' if absent."""
    if DOC_BEGIN not in text or DOC_END not in text:
        return ""
    return text[text.index(DOC_BEGIN) + len(DOC_BEGIN): text.index(DOC_END)].strip("\n")


if __name__ == "__main__":  # python -m hf2vllm.generation_params  -> the generated block, to paste
    print(DOC_BEGIN)
    print(render_translation_doc())
    print(DOC_END)
