"""The wire protocol, tested without a socket."""

from __future__ import annotations

import json

import pytest

from switchboard.errors import ProtocolError
from switchboard.protocol import ErrorCode, Hello, Reopen, Send, parse
from switchboard.protocol import server as frames
from switchboard.protocol.frames import check_body

MAX = 10_000


def error_of(text: str | bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as caught:
        parse(text, MAX)
    return ErrorCode(caught.value.code)


def test_hello_is_parsed_with_defaults() -> None:
    frame = parse('{"type": "hello", "v": 1}', MAX)
    assert frame == Hello(type="hello", v=1)


def test_send_is_parsed_with_its_ref() -> None:
    frame = parse(
        '{"type":"send","conversation":3,"client_id":"c1","body":"hi","ref":"r"}',
        MAX,
    )
    assert isinstance(frame, Send)
    assert (frame.conversation, frame.client_id, frame.body, frame.ref) == (
        3,
        "c1",
        "hi",
        "r",
    )


def test_reopen_is_parsed_with_its_ref() -> None:
    frame = parse('{"type":"reopen","conversation":7,"ref":"r1"}', MAX)
    assert frame == Reopen(type="reopen", conversation=7, ref="r1")


def test_reopen_ref_is_optional() -> None:
    frame = parse('{"type":"reopen","conversation":7}', MAX)
    assert isinstance(frame, Reopen)
    assert frame.ref is None


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "reopen"}',
        '{"type": "reopen", "conversation": 0}',
        '{"type": "reopen", "conversation": "seven"}',
        '{"type": "reopen", "conversation": 9007199254740993}',
        '{"type": "reopen", "conversation": 7, "ref": 5}',
    ],
)
def test_reopen_without_a_valid_conversation_is_a_bad_frame(text: str) -> None:
    assert error_of(text) is ErrorCode.BAD_FRAME


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", ErrorCode.BAD_JSON),
        ("not json", ErrorCode.BAD_JSON),
        ("[]", ErrorCode.BAD_JSON),
        ('"hello"', ErrorCode.BAD_JSON),
        ("{}", ErrorCode.BAD_FRAME),
        ('{"type": "launch"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": 5}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "send"}', ErrorCode.BAD_FRAME),
        (
            '{"type": "send", "conversation": "x", "client_id": "a"}',
            ErrorCode.BAD_FRAME,
        ),
        ('{"type": "send", "conversation": 0, "client_id": "a"}', ErrorCode.BAD_FRAME),
        ('{"type": "send", "conversation": 1, "client_id": ""}', ErrorCode.BAD_FRAME),
        ('{"type": "read", "conversation": 1, "seq": -1}', ErrorCode.BAD_FRAME),
        ('{"type": "status", "status": "asleep"}', ErrorCode.BAD_FRAME),
        ('{"type": "hello"}', ErrorCode.BAD_FRAME),
    ],
)
def test_bad_frames_get_a_stable_code(text: str, code: ErrorCode) -> None:
    assert error_of(text) is code


def test_oversized_frame_is_refused_before_parsing() -> None:
    assert error_of("x" * (MAX + 1)) is ErrorCode.FRAME_TOO_LARGE


def test_bytes_are_accepted_like_text() -> None:
    assert parse(b'{"type":"ping"}', MAX).type == "ping"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert parse('{"type":"ping","future":true}', MAX).type == "ping"


def send(body: str, kind: str = "text", sku: str | None = None) -> Send:
    return Send(
        type="send", conversation=1, client_id="c", body=body, kind=kind, sku=sku
    )  # type: ignore[arg-type]


def test_body_is_trimmed() -> None:
    assert check_body(send("  hi  "), 10) == "hi"


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_empty_body_is_refused(body: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_body(send(body), 10)
    assert caught.value.code == ErrorCode.BODY_EMPTY


def test_body_over_the_limit_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        check_body(send("x" * 11), 10)
    assert caught.value.code == ErrorCode.BODY_TOO_LONG


def test_product_needs_a_sku() -> None:
    with pytest.raises(ProtocolError) as caught:
        check_body(send("", kind="product"), 10)
    assert caught.value.code == ErrorCode.BAD_FRAME


def test_server_frames_are_compact_json() -> None:
    text = frames.ack(4, "c1", 7, "r")
    assert json.loads(text) == {
        "type": "ack",
        "conversation": 4,
        "client_id": "c1",
        "seq": 7,
        "ref": "r",
    }
    assert " " not in text


def test_error_frame_carries_code_and_ref() -> None:
    frame = json.loads(frames.error(ErrorCode.NOT_FOUND, "no such thing", "r1"))
    assert frame == {
        "type": "error",
        "code": "not_found",
        "message": "no such thing",
        "ref": "r1",
    }


def test_text_is_encoded_as_data_not_markup() -> None:
    frame = json.loads(frames.typing(1, "c:1", "<b>x</b>", True))
    assert frame["name"] == "<b>x</b>"


@pytest.mark.parametrize("bad", ["\\u0000", "\\u0007", "\\u001b[31m", "\\u007f"])
def test_control_characters_in_text_are_refused(bad: str) -> None:
    text = f'{{"type":"send","conversation":1,"client_id":"c","body":"a{bad}"}}'
    assert error_of(text) is ErrorCode.BAD_FRAME
    hello = f'{{"type":"hello","v":1,"name":"a{bad}"}}'
    assert error_of(hello) is ErrorCode.BAD_FRAME


def test_tabs_and_newlines_are_text() -> None:
    frame = parse(
        '{"type":"send","conversation":1,"client_id":"c","body":"a\\n\\tb\\r"}', MAX
    )
    assert isinstance(frame, Send)
    assert frame.body == "a\n\tb\r"


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "join", "conversation": "1"}',
        '{"type": "join", "conversation": 1.0}',
        '{"type": "start", "after_seq": true}',
        '{"type": "typing", "conversation": 1, "active": "yes"}',
        '{"type": "hello", "v": "1"}',
        '{"type": "context", "conversation": 3, "context": "x"}',
        '{"type": "start", "context": {"cart": [{"sku": "a", "quantity": "2"}]}}',
        '{"type": "transfer", "conversation": 1, "agent": 9007199254740993}',
    ],
)
def test_a_field_of_the_wrong_type_or_range_is_a_bad_frame(text: str) -> None:
    # Strictly: a string is not a number, nor true a 1, and a field that
    # should be an object is a bad field, not a frame that is not JSON.
    assert error_of(text) is ErrorCode.BAD_FRAME


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\x9b"])
def test_control_characters_in_text_are_a_bad_frame(char: str) -> None:
    frame = {"type": "send", "conversation": 1, "client_id": "c", "body": f"a{char}"}
    assert error_of(json.dumps(frame)) is ErrorCode.BAD_FRAME
