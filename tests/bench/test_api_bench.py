"""The API benchmark's own logic: reading wrk's report and writing its Lua script.

No timings here, and no wrk: the report below is wrk 4.1's format, as the bench reads it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("foureyes_bench_api", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

REPORT = """\
Running 10s test @ http://127.0.0.1:8400/v1/decisions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.53ms    2.01ms  41.20ms   88.10%
    Req/Sec     2.14k   120.33     2.40k    71.00%
  Latency Distribution
     50%    7.21ms
     75%    8.02ms
     90%  912.00us
     99%    1.20s
  21342 requests in 10.01s, 12.34MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2132.13
Transfer/sec:      1.23MB
"""


def test_the_report_is_read_in_milliseconds_with_every_error_counted() -> None:
    result = bench.parse_wrk(REPORT)
    assert result.requests == 21342
    assert result.seconds == pytest.approx(10.01)
    assert result.rps == pytest.approx(2132.13)
    assert result.percentiles_ms == {
        50: pytest.approx(7.21),
        75: pytest.approx(8.02),
        90: pytest.approx(0.912),
        99: pytest.approx(1200.0),
    }
    assert result.non_2xx == 5
    assert result.socket_errors == 3
    assert result.errors == 8


def test_a_clean_run_has_no_errors() -> None:
    clean = "\n".join(
        line for line in REPORT.splitlines() if not line.strip().startswith(("Socket", "Non-2xx"))
    )
    result = bench.parse_wrk(clean)
    assert result.errors == 0


def test_a_report_without_percentiles_is_refused() -> None:
    before, _, rest = REPORT.partition("  Latency Distribution")
    without = before + rest.partition("99%    1.20s\n")[2]
    with pytest.raises(ValueError, match="percentiles"):
        bench.parse_wrk(without)


def test_a_report_without_totals_is_refused() -> None:
    with pytest.raises(ValueError, match="totals"):
        bench.parse_wrk("unable to connect to 127.0.0.1:8400 Connection refused\n")


def test_the_script_sends_the_body_and_headers_verbatim() -> None:
    script = bench.wrk_script(
        "POST",
        {"action": "a.b", "note": 'say "hi" \\ ]] done ü'},
        {"Authorization": "Bearer fey_1_x"},
    )
    lines = script.splitlines()
    assert lines[0] == 'wrk.method = "POST"'
    assert lines[2] == 'wrk.headers["Content-Type"] = "application/json"'
    assert lines[3] == 'wrk.headers["Authorization"] = "Bearer fey_1_x"'
    # The body: JSON with its quote, backslash and UTF-8 bytes as Lua decimal escapes.
    body = lines[1].removeprefix("wrk.body = ")
    assert body == (
        '"{\\034action\\034:\\034a.b\\034,\\034note\\034:\\034say \\092\\034hi\\092\\034 '
        '\\092\\092 ]] done \\092u00fc\\034}"'
    )


def test_lua_strings_escape_everything_but_printable_ascii() -> None:
    assert bench.lua_string("plain text") == '"plain text"'
    assert bench.lua_string('a"b\\c\n') == '"a\\034b\\092c\\010"'
    assert bench.lua_string("é") == '"\\195\\169"'
