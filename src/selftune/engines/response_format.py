"""OpenAI's `response_format` on both engines: JSON (`json_object`) or JSON that fits a schema
(`json_schema`), written compactly (no whitespace outside strings), ending when the value is
complete.

- llama.cpp: a GBNF grammar in the sequence's sampler chain (`gbnf`), with no optional
  whitespace, so a model cannot pad the answer with spaces and newlines until max_tokens runs out;
- transformers: llguidance's token masks on the same JSON (`JsonMask`), one matcher per row.

Either way the only token allowed once the value is complete is end-of-turn.
"""

from __future__ import annotations

import json
import re
from typing import Any

from selftune.errors import SelftuneError

# JSON with no whitespace outside strings; the root is an object, as OpenAI's json_object asks
JSON_OBJECT_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ( string ":" value ( "," string ":" value )* )? "}"
array  ::= "[" ( value ( "," value )* )? "]"
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]{1,4} )?
"""
_SPACE_RULE = re.compile(r"^space ::= .*$", re.M)


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a response format asks for (None for plain text)."""
    if not response_format or response_format.get("type", "text") == "text":
        return None
    kind = response_format["type"]
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    raise SelftuneError(f"response_format type {kind!r} is not supported")


def gbnf(response_format: dict[str, Any] | None) -> str | None:
    """The llama.cpp grammar for a response format (None for plain text)."""
    schema = schema_of(response_format)
    if schema is None:
        return None
    if response_format and response_format["type"] == "json_object":
        return JSON_OBJECT_GBNF
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain exceptions on schemas it cannot do
        raise SelftuneError(f"response_format.json_schema: {exc}") from exc
    return _SPACE_RULE.sub('space ::= ""', grammar)  # compact, as on the transformers engine


def masks_available() -> bool:
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


class JsonMask:
    """One row's JSON constraint for the transformers engine: `allowed()` is the boolean mask
    of the tokens that keep the text valid, `advance(token)` follows the chosen one."""

    _tokenizers: dict[int, Any] = {}  # llguidance's view of a HF tokenizer (~1 s to build)

    def __init__(self, tokenizer: Any, response_format: dict[str, Any], eos: list[int]):
        import llguidance
        import llguidance.hf

        key = id(tokenizer)
        if key not in self._tokenizers:
            self._tokenizers[key] = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos[0])
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema_of(response_format) or {}, overrides={"whitespace_flexible": False}
        )
        self.matcher = llguidance.LLMatcher(self._tokenizers[key], grammar)
        if self.matcher.is_error():
            raise SelftuneError(f"response_format.json_schema: {self.matcher.get_error()}")
        self.eos = eos

    def allowed(self, vocab_size: int) -> Any:
        import torch

        bias = self.matcher.compute_logit_bias()
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8) > 0
        size = min(vocab_size, allowed.numel())
        mask[:size] = allowed[:size]
        if self.matcher.is_accepting() or self.matcher.is_stopped() or not mask.any():
            mask[self.eos] = True  # every end-of-turn token ends a complete value
        return mask

    def advance(self, token: int) -> None:
        if token not in self.eos:
            self.matcher.consume_token(token)
