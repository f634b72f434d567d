"""Routes: parsing (with the position of a syntax error) and IoT Hub's three-valued condition semantics."""

from __future__ import annotations

import json

import pytest

from edgevision.runtime.routes import UNDEFINED, Message, RouteError, parse_route

DISPLAY = 'BrokeredEndpoint("/modules/sensehat-display/inputs/input1")'


def message(body: object = None, module: str = "camera-capture", output: str = "output1", **properties: str) -> Message:
    system = {"contentType": "application/json", "contentEncoding": "utf-8", "connectionModuleId": module}
    raw = json.dumps(body).encode() if body is not None else b""
    return Message(module, output, raw, properties, system)


def where(condition: str) -> object:
    route = parse_route("r", f"FROM /messages/* WHERE {condition} INTO $upstream")
    return route


@pytest.mark.parametrize(
    ("source", "module", "output", "expected"),
    [
        ("/messages/*", "any", "x", True),
        ("/*", "any", "x", True),
        ("/messages/modules/*", "any", "x", True),
        ("/messages/modules/camera-capture/*", "camera-capture", "captures", True),
        ("/messages/modules/camera-capture/*", "other", "output1", False),
        ("/messages/modules/camera-capture/outputs/*", "camera-capture", "captures", True),
        ("/messages/modules/camera-capture/outputs/output1", "camera-capture", "output1", True),
        ("/messages/modules/camera-capture/outputs/output1", "camera-capture", "captures", False),
    ],
)
def test_sources_select_module_and_output(source: str, module: str, output: str, expected: bool) -> None:
    route = parse_route("r", f"FROM {source} INTO {DISPLAY}")
    assert route.accepts(message({}, module=module, output=output)) is expected
    assert route.sink.module == "sensehat-display" and route.sink.input == "input1"


def test_upstream_sink_and_case_insensitive_keywords() -> None:
    route = parse_route("r", "from /messages/* where $body.a = 1 into $upstream")
    assert route.sink.upstream
    assert route.accepts(message({"a": 1}))
    assert not route.accepts(message({"a": 2}))


def test_body_comparisons_drop_messages_below_a_probability() -> None:
    route = where("$body.topProbability >= 0.5")
    assert route.accepts(message({"topProbability": 0.93}))
    assert route.accepts(message({"topProbability": 0.5}))
    assert not route.accepts(message({"topProbability": 0.49}))
    assert not route.accepts(message({"other": 1}))  # undefined is not true


def test_body_is_only_queried_for_utf8_json_messages() -> None:
    route = where("$body.a = 1")
    plain = Message("m", "o", b'{"a": 1}', {}, {"contentType": "text/plain", "contentEncoding": "utf-8"})
    assert not route.accepts(plain)
    assert route.accepts(
        Message("m", "o", b'{"a": 1}', {}, {"contentType": "application/json", "contentEncoding": "UTF-8"})
    )


def test_nested_paths_indexes_and_brackets() -> None:
    body = {"predictions": [{"tagName": "zebra", "probability": 0.9}], "a b": {"c": True}}
    assert where("$body.predictions[0].tagName = 'zebra'").accepts(message(body))
    assert where("$body['a b'].c = true").accepts(message(body))
    assert not where("$body.predictions[3].tagName = 'zebra'").accepts(message(body))


def test_properties_are_strings_and_not_coerced() -> None:
    msg = message({}, topTag="zebra", topProbability="0.9")
    assert where("topTag = 'zebra'").accepts(msg)
    assert where("TOPTAG = 'zebra'").accepts(msg)  # property names are case-insensitive
    assert not where("topProbability > 0.5").accepts(msg)  # '0.9' > 0.5 is undefined in IoT Hub
    assert where("topProbability = '0.9'").accepts(msg)


def test_and_or_not_are_three_valued() -> None:
    msg = message({"a": 1})
    assert where("$body.a = 1 AND NOT ($body.a = 2)").accepts(msg)
    assert where("$body.missing = 1 OR $body.a = 1").accepts(msg)  # undefined OR true = true
    assert not where("$body.missing = 1 AND $body.a = 1").accepts(msg)  # undefined AND true = undefined
    assert not where("NOT ($body.missing = 1)").accepts(msg)  # NOT undefined = undefined
    assert where("$body.missing = 1 AND $body.a = 2 OR $body.a = 1").accepts(msg)  # AND binds tighter


def test_functions_and_system_properties() -> None:
    msg = message({"tag": "Zebra", "n": -3})
    assert where("IS_DEFINED($body.tag) AND NOT IS_DEFINED($body.nothing)").accepts(msg)
    assert where("LOWER($body.tag) = 'zebra' AND ABS($body.n) = 3").accepts(msg)
    assert where("STARTSWITH($body.tag, 'Ze') AND CONTAINS($body.tag, 'bra') AND LENGTH($body.tag) = 5").accepts(msg)
    assert where("$connectionModuleId = 'camera-capture' AND $contentType = 'application/json'").accepts(msg)
    assert where("$body.n * 2 + 10 = 4 AND $body.n % 2 = -1").accepts(msg)
    assert not where("$body.n / 0 = 1").accepts(msg)


def test_condition_nodes_return_undefined_not_false() -> None:
    route = where("$body.x = 1")
    assert route.condition is not None
    assert route.condition(message({})) is UNDEFINED
    assert route.condition(message({"x": "1"})) is UNDEFINED  # string vs number
    assert route.condition(message({"x": 2})) is False


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("FROM /messages/* WHERE $body.a >= INTO $upstream", 34, "ends too early"),
        ("FROM /messages/* WHERE ($body.a = 1 INTO $upstream", 36, "expected ')'"),
        ("FROM /messages/* WHERE $body.a = 1 1 INTO $upstream", 36, "unexpected '1'"),
        ("FROM /messages/* WHERE $body.a ~ 1 INTO $upstream", 32, "unexpected character '~'"),
        ("FROM /messages/* WHERE $boddy.a = 1 INTO $upstream", 24, "unknown system property"),
        ("FROM /messages/* WHERE FOO($body.a) INTO $upstream", 24, "unknown function"),
        ("FROM /messages/* INTO BrokeredEndpoint(/modules/x/inputs/y)", 23, "unsupported sink"),
        ('FROM /messages/* INTO BrokeredEndpoint("/modules/x/y")', 23, "is not /modules/<module>/inputs/<input>"),
        ("FROM /messages/modules INTO $upstream", 6, "unsupported source"),
        ("FROM /messages/*", 17, "missing INTO"),
        ("/messages/* INTO $upstream", 1, "starts with FROM"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(RouteError) as caught:
        parse_route("r", text)
    assert reason in caught.value.reason
    assert caught.value.position == position


def test_keywords_inside_string_literals_are_not_clauses() -> None:
    route = parse_route("r", "FROM /messages/* WHERE $body.note = 'goes INTO the WHERE' INTO $upstream")
    assert route.accepts(message({"note": "goes INTO the WHERE"}))
