"""LLM engines through litellm (``local_llm``, ``remote_llm``).

- ``client``: ``load_litellm`` (lazy, guarded import), ``chat``, ``stream_chat``,
  ``LLMTarget``, ``LLMError``.
- ``keys``: the person's API key from the environment or an owner-only file.
- ``engine``: ``LLMEngine`` — crisis check offline first, prompt files, streaming,
  one clear line and the offline mirrorback when the model cannot answer.
- ``extraction``: JSON extraction by the model, validated and repaired.

Importing this package imports none of them, and nothing here imports litellm
before a model is actually called.
"""
