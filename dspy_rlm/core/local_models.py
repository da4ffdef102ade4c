"""Token caps that OpenAI-compatible local servers honour.

DSPy 3.4's default engine sends an `openai/...` model's `max_tokens` as `max_completion_tokens`,
which llama.cpp's server (and others built before that field existed) ignores: one sub-query with
`max_tokens=160` generated 7,607 tokens in 455 s, until the server's context was full. For an LM
with an `api_base` of its own (a local or self-hosted endpoint) on that engine, each call of an RLM
also sends the cap as `max_tokens` in the request body, which every such server reads. LiteLLM's
engine (`engine="litellm"`) already sends `max_tokens`; hosted providers are left as they are.
"""

from __future__ import annotations

from typing import Any

from dspy_rlm import settings


def token_cap_config(lm: Any) -> dict[str, Any]:
    """The per-call predictor `config` that makes `lm`'s endpoint honour its token cap ({} if none is needed)."""
    kwargs = getattr(lm, "kwargs", None)
    if not settings.LOCAL_TOKEN_CAP or not isinstance(kwargs, dict) or not kwargs.get("api_base"):
        return {}
    cap = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
    if not isinstance(cap, int) or getattr(lm, "engine", "auto") == "litellm":
        return {}
    extra_body = dict(kwargs.get("extra_body") or {})
    if "max_tokens" in extra_body:
        return {}
    return {"extra_body": {**extra_body, "max_tokens": cap}}
