"""`/v1/responses` with the official `openai` client, unchanged (tiny random model on loopback):
text in and out, instructions, streaming events, previous_response_id, and 400s for the rest."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")


def client(live):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def test_a_response_has_text_usage_and_the_same_text_as_chat(live):
    twin = client(live)
    out = twin.responses.create(
        model="twin", input="are you coming sunday?", max_output_tokens=8, temperature=0
    )
    assert out.object == "response" and out.id.startswith("resp_")
    assert out.output[0].type == "message" and out.output[0].role == "assistant"
    assert out.output_text == out.output[0].content[0].text
    assert out.usage.input_tokens > 0 and 0 < out.usage.output_tokens <= 8
    assert out.usage.total_tokens == out.usage.input_tokens + out.usage.output_tokens
    # the same prompt as chat: without instructions, the twin's own system prompt
    chat = twin.chat.completions.create(
        model="twin",
        messages=[{"role": "user", "content": "are you coming sunday?"}],
        max_tokens=8,
        temperature=0,
    )
    assert out.output_text == chat.choices[0].message.content
    assert out.status == (
        "incomplete" if chat.choices[0].finish_reason == "length" else "completed"
    )


def test_instructions_are_the_system_message(live):
    twin = client(live)
    args = dict(model="twin", max_output_tokens=6, temperature=0)
    out = twin.responses.create(
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}],
        instructions="You are a pirate.",
        **args,
    )
    chat = twin.chat.completions.create(
        model="twin",
        messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "hello"},
        ],
        max_tokens=6,
        temperature=0,
    )
    assert out.instructions == "You are a pirate."
    assert out.output_text == chat.choices[0].message.content


def test_streaming_sends_openais_events_and_the_final_text(live):
    twin = client(live)
    events = list(
        twin.responses.create(
            model="twin", input="hello", max_output_tokens=8, temperature=0, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert streamed == final.output_text == events[-4].text
    plain = twin.responses.create(model="twin", input="hello", max_output_tokens=8, temperature=0)
    assert plain.output_text == streamed


def test_previous_response_id_continues_the_conversation(live):
    twin = client(live)
    args = dict(model="twin", max_output_tokens=6, temperature=0)
    first = twin.responses.create(input="hello", **args)
    second = twin.responses.create(input="and then?", previous_response_id=first.id, **args)
    assert second.previous_response_id == first.id
    chat = twin.chat.completions.create(
        model="twin",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "and then?"},
        ],
        max_tokens=6,
        temperature=0,
    )
    assert second.output_text == chat.choices[0].message.content
    assert twin.responses.retrieve(second.id).output_text == second.output_text
    twin.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as err:
        twin.responses.create(input="again", previous_response_id=first.id, **args)
    assert err.value.body["param"] == "previous_response_id"
    assert "keeps its last" in err.value.body["message"]
    unkept = twin.responses.create(input="secret", store=False, **args)
    with pytest.raises(openai.NotFoundError):
        twin.responses.retrieve(unkept.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"background": True}, "background"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.[0].content.[0].type",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]},
            "input.[0].type",
        ),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
    ],
)
def test_what_a_text_twin_cannot_do_is_a_400_naming_the_field(live, extra, param):
    args = {"model": "twin", "input": "hello", "max_output_tokens": 4, **extra}
    with pytest.raises(openai.BadRequestError) as err:
        client(live).responses.create(**args)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param


def test_json_output_is_honoured_on_the_transformers_engine_too(live):
    import json

    schema = {"type": "object", "properties": {"coming": {"type": "boolean"}},
              "required": ["coming"], "additionalProperties": False}  # fmt: skip
    fmt = {"format": {"type": "json_schema", "name": "x", "schema": schema}}
    out = client(live).responses.create(model="twin", input="hello", text=fmt, max_output_tokens=16)
    assert set(json.loads(out.output_text)) == {"coming"}


def test_text_format_is_chats_response_format():
    from selftune.server.routes.responses import response_format

    assert response_format(None) is None
    assert response_format({"format": {"type": "text"}}) is None
    assert response_format({"format": {"type": "json_object"}}) == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "x", "schema": schema, "strict": True}
    assert response_format({"format": fmt}) == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema, "strict": True},
    }


def test_langchain_with_the_responses_api(live):
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=live.url + "/v1",
        api_key="unused",
        model="twin",
        max_tokens=6,
        temperature=0,
        use_responses_api=True,
    )
    reply = chat.invoke("are you coming sunday?")
    assert reply.text and isinstance(reply.text, str)
    assert "".join(c.text for c in chat.stream("are you coming sunday?")) == reply.text
