"""Crontab parsing: every syntax form and every error path, plus fuzzing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gw.cron import CronItem, CronTimer, parse_cron_line, parse_crontab, parse_timer
from gw.errors import ConfigurationError, CrontabError

ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(1, 32))
ALL_MONTHS = tuple(range(1, 13))
ALL_DOWS = tuple(range(7))


def one(line: str) -> CronItem:
    items = parse_crontab(line)
    assert len(items) == 1
    return items[0]


# -- time fields ------------------------------------------------------------


def test_every_minute_defaults() -> None:
    item = one("* * * * * send_email")
    assert item == CronItem(
        identifier="send_email",
        task="send_email",
        timer=CronTimer(
            minutes=ALL_MINUTES, hours=ALL_HOURS, days=ALL_DAYS, months=ALL_MONTHS, dows=ALL_DOWS
        ),
    )
    assert item.fill == timedelta(0)
    assert item.payload is None
    assert (item.max_attempts, item.queue, item.priority, item.job_key) == (None,) * 4
    assert item.job_key_mode is None


@pytest.mark.parametrize(
    ("expression", "field", "expected"),
    [
        ("5 * * * *", "minutes", (5,)),
        ("05 * * * *", "minutes", (5,)),
        ("0,30 * * * *", "minutes", (0, 30)),
        ("10-13 * * * *", "minutes", (10, 11, 12, 13)),
        ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
        ("*/45 * * * *", "minutes", (0, 45)),
        ("*/100 * * * *", "minutes", (0,)),
        ("*/1 * * * *", "minutes", ALL_MINUTES),
        ("59,1-3,*/30,2 * * * *", "minutes", (0, 1, 2, 3, 30, 59)),
        ("* 0 * * *", "hours", (0,)),
        ("* 23 * * *", "hours", (23,)),
        ("* 8-10,20 * * *", "hours", (8, 9, 10, 20)),
        ("* */6 * * *", "hours", (0, 6, 12, 18)),
        ("* * 1 * *", "days", (1,)),
        ("* * 31 * *", "days", (31,)),
        ("* * */10 * *", "days", (1, 11, 21, 31)),
        ("* * * 12 *", "months", (12,)),
        ("* * * */3 *", "months", (1, 4, 7, 10)),
        ("* * * 1-12 *", "months", ALL_MONTHS),
        ("* * * * 0", "dows", (0,)),
        ("* * * * 7", "dows", (0,)),
        ("* * * * 0,7", "dows", (0,)),
        ("* * * * 1-5", "dows", (1, 2, 3, 4, 5)),
        ("* * * * 5-7", "dows", (0, 5, 6)),
        ("* * * * 6-7", "dows", (0, 6)),
        ("* * * * 0-7", "dows", ALL_DOWS),
        ("* * * * */2", "dows", (0, 2, 4, 6)),
    ],
)
def test_time_field_forms(expression: str, field: str, expected: tuple[int, ...]) -> None:
    assert getattr(parse_timer(expression), field) == expected
    assert getattr(one(f"{expression} task").timer, field) == expected


def test_restricted_flags_follow_value_sets() -> None:
    # Graphile decides by the value set, so a full range counts as "*".
    assert not parse_timer("* * 1-31 * 0-6").dom_restricted
    assert not parse_timer("* * 1-31 * 0-6").dow_restricted
    assert parse_timer("* * */2 * 1").dom_restricted
    assert parse_timer("* * */2 * 1").dow_restricted


def test_timer_expression_is_canonical() -> None:
    assert parse_timer("*/15 0-23 1-31 1,2,3 0-7").expression == "*/15 * * 1-3 *"
    assert parse_timer("1,2,4,5,6 8 10,11 * 6,7").expression == "1,2,4-6 8 10,11 * */6"


@pytest.mark.parametrize(
    "text",
    [
        "* * * * * task",
        "  * * * * * task  ",
        "*\t*  *   *\t\t* task",
        "* * * * * task\r",
    ],
)
def test_whitespace_is_flexible(text: str) -> None:
    assert one(text).task == "task"


def test_lines_comments_blank_crlf_and_bom() -> None:
    text = (
        "\ufeff# a comment\r\n"
        "\r\n"
        "   \t\r\n"
        "  # indented comment\r\n"
        "0 4 * * * first\r\n"
        "#0 4 * * * commented_out\n"
        "0 5 * * * second ?id=second_item\n"
    )
    items = parse_crontab(text)
    assert [(i.identifier, i.task) for i in items] == [
        ("first", "first"),
        ("second_item", "second"),
    ]
    assert parse_crontab("") == []
    assert parse_crontab("# only a comment\n\n") == []


@pytest.mark.parametrize("task", ["a", "_", "send_email", "Foo-Bar", "ns:task", "dir/sub/task"])
def test_task_identifiers(task: str) -> None:
    assert one(f"* * * * * {task}").task == task


# -- options ----------------------------------------------------------------


def test_all_options_node_spelling() -> None:
    item = one(
        "0 8 * * 1 send ?id=morning-send&fill=4w3d2h1m30s&max=3&queue=mail:q"
        "&priority=-5&jobKey=my%20key+x&jobKeyMode=preserve_run_at"
    )
    assert item.identifier == "morning-send"
    assert item.fill == timedelta(weeks=4, days=3, hours=2, minutes=1, seconds=30)
    assert item.max_attempts == 3
    assert item.queue == "mail:q"
    assert item.priority == -5
    assert item.job_key == "my key x"
    assert item.job_key_mode == "preserve_run_at"


def test_all_options_rs_spelling() -> None:
    item = one("0 8 * * 1 send ?job_key=k&job_key_mode=replace&priority=32767&max=32767")
    assert (item.job_key, item.job_key_mode) == ("k", "replace")
    assert (item.priority, item.max_attempts) == (32767, 32767)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("0s", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h1h", timedelta(hours=2)),
        ("1s1w", timedelta(weeks=1, seconds=1)),
    ],
)
def test_fill_phrases(phrase: str, expected: timedelta) -> None:
    assert one(f"* * * * * t ?fill={phrase}").fill == expected


def test_options_tolerate_empty_chunks_and_percent_encoding() -> None:
    item = one("* * * * * t ?&max=2&&job%5Fkey=a%26b&")
    assert (item.max_attempts, item.job_key) == (2, "a&b")
    assert one("* * * * * t ?&").max_attempts is None


def test_job_key_mode_without_job_key_is_kept() -> None:
    # Node and RS accept it (add_job ignores the mode when there is no key).
    assert one("* * * * * t ?jobKeyMode=replace").job_key_mode == "replace"


# -- payload ----------------------------------------------------------------


def test_payload_json5() -> None:
    item = one(
        """* * * * * t ?max=1 {a: 1, 'b': "two", c: [1, 0x1F, .5, +2,], d: {e: null,},"""
        """ /* note */ f: true, $g_h: 'it\\'s'} // trailing comment"""
    )
    assert item.payload == {
        "a": 1,
        "b": "two",
        "c": [1, 31, 0.5, 2],
        "d": {"e": None},
        "f": True,
        "$g_h": "it's",
    }


def test_payload_without_options_and_empty_payload() -> None:
    assert one("* * * * * t {}").payload == {}
    assert one('* * * * * t {"x": [{}]}').payload == {"x": [{}]}


# -- identifiers ------------------------------------------------------------


def test_same_task_with_distinct_ids() -> None:
    items = parse_crontab("0 * * * * t\n30 * * * * t ?id=t_half")
    assert [i.identifier for i in items] == ["t", "t_half"]


# -- helpers ----------------------------------------------------------------


def test_parse_cron_line() -> None:
    item = parse_cron_line("  0 1 * * * t", line=7)
    assert item.timer.hours == (1,)
    with pytest.raises(CrontabError) as info:
        parse_cron_line("  61 * * * * t", line=7)
    assert (info.value.line, info.value.column) == (7, 3)


def test_parse_timer_positions_count_leading_space() -> None:
    with pytest.raises(CrontabError) as info:
        parse_timer("  * * * * 9")
    assert (info.value.line, info.value.column) == (1, 11)


def test_crontab_error_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        parse_crontab("x")


# -- every error path -------------------------------------------------------

LONG = "t" * 129
ERRORS = [
    # (crontab text, line, column, message fragment)
    ("@daily t", 1, 1, "macros like '@daily' are not supported"),
    ("* * *", 1, 6, "expected the month field"),
    ("*", 1, 2, "expected the hour field"),
    ("* * * * *", 1, 10, "expected a task identifier after the five time fields"),
    ("1,,2 * * * * t", 1, 3, "empty value in the minute field"),
    ("1, * * * * t", 1, 3, "empty value in the minute field"),
    ("*x * * * * t", 1, 2, "unexpected 'x' after '*' in the minute field"),
    ("*/ * * * * t", 1, 3, "expected a step number after '*/' in the minute field, got nothing"),
    ("* */a * * * t", 1, 5, "expected a step number after '*/' in the hour field, got 'a'"),
    ("*/0 * * * * t", 1, 3, "the step in the minute field must be at least 1, got 0"),
    ("* * ? * * t", 1, 5, "unsupported value '?' in the day-of-month field"),
    ("* * L * * t", 1, 5, "expected a number, a range like 1-5, '*' or '*/n'"),
    ("* * * JAN * t", 1, 7, "names like JAN or MON are not supported"),
    ("* * * * MON t", 1, 9, "names like JAN or MON are not supported"),
    ("* * * * send_email", 1, 9, "is a field missing? A line needs five time fields"),
    ("61 * * * * t", 1, 1, "minute value 61 is out of range 0-59"),
    ("* 24 * * * t", 1, 3, "hour value 24 is out of range 0-23"),
    ("* * 0 * * t", 1, 5, "day-of-month value 0 is out of range 1-31"),
    ("* * 32 * * t", 1, 5, "day-of-month value 32 is out of range 1-31"),
    ("* * * 0 * t", 1, 7, "month value 0 is out of range 1-12"),
    ("* * * 13 * t", 1, 7, "month value 13 is out of range 1-12"),
    ("* * * * 8 t", 1, 9, "day-of-week value 8 is out of range 0-7"),
    ("* * * * 99999999999999999999 t", 1, 9, "value 99999999999999999999 is out of range"),
    ("50-70 * * * * t", 1, 4, "minute value 70 is out of range 0-59"),
    ("1,70-75 * * * * t", 1, 3, "minute value 70 is out of range 0-59"),
    ("5/2 * * * * t", 1, 2, "steps like 'n/m' are not supported in the minute field"),
    ("5x * * * * t", 1, 2, "unexpected 'x' in the minute field"),
    ("1- * * * * t", 1, 3, "expected a number after '-' in the minute field"),
    ("1-5/2 * * * * t", 1, 4, "steps on ranges like 'a-b/n' are not supported"),
    ("1-5x * * * * t", 1, 4, "unexpected 'x' in the minute field"),
    ("* 5-3 * * * t", 1, 3, "range '5-3' in the hour field is invalid"),
    ("* 5-5 * * * t", 1, 3, "the end must be greater than the start"),
    ("* * * * 7-7 t", 1, 9, "range '7-7' in the day-of-week field is invalid"),
    ("0 0 30 2 * t", 1, 5, "schedule '0 0 30 2 *' never runs"),
    ("0 0 31 4,6,9,11 * t", 1, 5, "never runs"),
    ("* * * * * 1abc", 1, 11, "expected a task identifier (a letter or '_' first), got '1'"),
    ("* * * * * ?max=1", 1, 11, "expected a task identifier"),
    ("* * * * * foo?max=1", 1, 14, "put a space before '?'"),
    ("* * * * * foo{}", 1, 14, "put a space before '{'"),
    ("* * * * * foo.bar", 1, 14, "unexpected '.' in task identifier 'foo'"),
    (f"* * * * * {LONG}", 1, 11, "task identifier is 129 characters long; the maximum is 128"),
    ("* * * * * t ?", 1, 14, "expected options after '?'"),
    ("* * * * * t ? max=1", 1, 14, "expected options after '?'"),
    ("* * * * * t ?bad=1", 1, 14, "unknown option 'bad'; supported options are id, fill"),
    ("* * * * * t ?max=1&unsafe_dedupe=1", 1, 20, "unknown option 'unsafe_dedupe'"),
    ("* * * * * t ?=1", 1, 14, "expected an option name before '='"),
    ("* * * * * t ?max=1&max=2", 1, 20, "option 'max' is given more than once"),
    ("* * * * * t ?jobKey=a&job_key=b", 1, 23, "(already given as 'jobKey')"),
    ("* * * * * t ?job_key_mode=replace&jobKeyMode=replace", 1, 35, "more than once"),
    ("* * * * * t ?id=", 1, 17, "id '' is not valid"),
    ("* * * * * t ?id=9lives", 1, 17, "id '9lives' is not valid"),
    ("* * * * * t ?id=a:b", 1, 17, "id 'a:b' is not valid"),
    ("* * * * * t ?fill=", 1, 19, "fill '' is not a time phrase like '4w3d2h1m30s'"),
    ("* * * * * t ?fill=1y", 1, 19, "did not understand '1y'"),
    ("* * * * * t ?fill=h", 1, 19, "did not understand 'h'"),
    ("* * * * * t ?fill=1h30", 1, 19, "did not understand '30'"),
    ("* * * * * t ?fill=5300w", 1, 19, "longer than 100 years"),
    ("* * * * * t ?fill=9999999999999999w", 1, 19, "longer than 100 years"),
    ("* * * * * t ?max=", 1, 18, "max must be a whole number between 1 and 32767, got ''"),
    ("* * * * * t ?max=-1", 1, 18, "max must be a whole number between 1 and 32767"),
    ("* * * * * t ?max=1.5", 1, 18, "max must be a whole number"),
    ("* * * * * t ?max=0", 1, 18, "max must be between 1 and 32767, got 0"),
    ("* * * * * t ?max=32768", 1, 18, "max must be between 1 and 32767, got 32768"),
    ("* * * * * t ?max=99999999999999", 1, 18, "max must be a whole number"),
    ("* * * * * t ?priority=x", 1, 23, "priority must be a whole number between -32768 and"),
    ("* * * * * t ?priority=-32769", 1, 23, "priority must be between -32768 and 32767"),
    ("* * * * * t ?queue=a%20b", 1, 20, "queue 'a b' is not valid"),
    ("* * * * * t ?queue=", 1, 20, "queue '' is not valid"),
    (f"* * * * * t ?queue={'q' * 129}", 1, 20, "expected 1 to 128 letters"),
    ("* * * * * t ?jobKey=", 1, 21, "jobKey must be 1 to 512 characters long"),
    (f"* * * * * t ?job_key={'k' * 513}", 1, 22, "job_key must be 1 to 512 characters"),
    ("* * * * * t ?jobKeyMode=bogus", 1, 25, "must be 'replace' or 'preserve_run_at'"),
    ("* * * * * t ?jobKeyMode=unsafe_dedupe", 1, 25, "'unsafe_dedupe' is not allowed"),
    ("* * * * * t extra", 1, 13, "unexpected 'e': expected '?options', a '{...}' payload"),
    ("* * * * * t # note", 1, 13, "inline comments are not supported"),
    ("* * * * * t ?max=1 extra", 1, 20, "unexpected 'e': expected a '{...}' payload"),
    ("* * * * * t ?max=1 ?id=x", 1, 20, "unexpected '?'"),
    ("* * * * * t {", 1, 14, "invalid JSON5 payload: expected a property name or '}'"),
    ("* * * * * t {a: 1", 1, 18, "expected ',' or '}', got end of input"),
    ("* * * * * t {a 1}", 1, 16, "expected ':' after the property name"),
    ("* * * * * t {a: Infinity}", 1, 17, "Infinity and NaN cannot be stored"),
    ("* * * * * t {a: NaN}", 1, 17, "Infinity and NaN cannot be stored"),
    ("* * * * * t {a: 1} {b: 2}", 1, 20, "unexpected character '{' after the value"),
    ("* * * * * t {a: 'x\\1'}", 1, 19, "'\\1' is not a valid escape"),
    ("* * * * * t {} x", 1, 16, "after the value"),
    ("* * * * * a\n* * * * * a", 2, 11, "duplicate identifier 'a' (first used on line 1)"),
    ("* * * * * a ?id=x\n\n  * * * * * b ?id=x", 3, 19, "duplicate identifier 'x'"),
    ("* * * * * a\n* * * * * b ?id=a", 2, 17, "add '?id=...' to give each item"),
    ("# ok\n\t0 0 30 2 * t", 2, 6, "never runs"),
    ("\ufeff61 * * * * t", 1, 2, "minute value 61"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), ERRORS)
def test_errors_name_line_column_and_expectation(
    text: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(CrontabError) as info:
        parse_crontab(text)
    error = info.value
    assert fragment in str(error)
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"invalid crontab: line {line}, column {column}: ")


def test_error_message_example_from_docs() -> None:
    with pytest.raises(CrontabError) as info:
        parse_crontab("* * * * * a\n\n  0,61 * * * * b")
    assert str(info.value) == (
        "invalid crontab: line 3, column 5: minute value 61 is out of range 0-59"
    )


def test_parse_cron_line_rejects_blank_and_comment() -> None:
    for text in ("", "   ", "# comment"):
        with pytest.raises(CrontabError, match="blank or comment line"):
            parse_cron_line(text)


def test_parse_timer_rejects_trailing_content() -> None:
    with pytest.raises(CrontabError) as info:
        parse_timer("* * * * * task")
    assert info.value.column == 11
    assert "after the five time fields" in str(info.value)


# -- properties -------------------------------------------------------------

field_values = {
    "minutes": st.sets(st.integers(0, 59), min_size=1),
    "hours": st.sets(st.integers(0, 23), min_size=1),
    "days": st.sets(st.integers(1, 31), min_size=1),
    "months": st.sets(st.integers(1, 12), min_size=1),
    "dows": st.sets(st.integers(0, 6), min_size=1),
}


@st.composite
def timers(draw: st.DrawFn) -> CronTimer:
    values = {name: tuple(sorted(draw(strategy))) for name, strategy in field_values.items()}
    try:
        return CronTimer(**values)
    except ConfigurationError:
        return CronTimer(**{**values, "days": (1,)})


@given(timers())
def test_expression_round_trips(timer: CronTimer) -> None:
    assert parse_timer(timer.expression) == timer


VALID_CRONTAB = (
    "# nightly\n"
    "0 4 * * * cleanup ?fill=1h&max=3\n"
    "*/5 8-18 * * 1-5 poll ?id=poll_work&queue=q1&priority=2 {source: 'api', n: [1, 2,]}\n"
    "30 1 1,15 * 7 report ?jobKey=report&jobKeyMode=preserve_run_at\r\n"
)
SYNTAX_CHARS = "0123456789*/,-? &={}[]:'\"#\\.\t\r\nxXeE+_aZ%"


def check_outcome(text: str) -> None:
    """parse_crontab returns CronItems or raises a CrontabError that points into the text."""
    try:
        outcome: list[CronItem] | CrontabError = parse_crontab(text)
    except CrontabError as error:
        outcome = error
    if isinstance(outcome, CrontabError):
        lines = text.split("\n")
        assert 1 <= outcome.line <= len(lines)
        assert 1 <= outcome.column <= len(lines[outcome.line - 1]) + 1
    else:
        assert all(isinstance(item, CronItem) for item in outcome)


@given(st.text())
@settings(max_examples=300)
def test_random_text_only_raises_crontab_error(text: str) -> None:
    check_outcome(text)


@st.composite
def mutated_crontabs(draw: st.DrawFn) -> str:
    text = VALID_CRONTAB
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.one_of(st.sampled_from(SYNTAX_CHARS), st.characters()))
        if action == "insert":
            text = text[:position] + char + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    return text


@given(mutated_crontabs())
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_crontabs_only_raise_crontab_error(text: str) -> None:
    check_outcome(text)


def test_valid_crontab_parses() -> None:
    items = parse_crontab(VALID_CRONTAB)
    assert [i.identifier for i in items] == ["cleanup", "poll_work", "report"]
    assert items[1].payload == {"source": "api", "n": [1, 2]}
    assert items[2].timer.dows == (0,)
