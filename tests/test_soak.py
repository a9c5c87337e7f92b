"""benchmarks/soak.py, small: 8 clients for 10 s against a real server with a fresh data dir.

Every request kind of the mix runs at once (chat streamed and not into stored conversations,
classify, transcription, uploads, reads); every write the server acknowledged must then be in
the database, through the API and in the SQLite file, with no 5xx and no "database is locked"
in the server's log. The full run (100 clients, 2 minutes) is in the README's Benchmarks.
"""

import importlib.util

import pytest

from tests.conftest import REPO


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_small_soak_loses_nothing(tmp_path):
    soak = load_soak()
    out = tmp_path / "soak.json"
    result = soak.main(
        ["--clients", "8", "--seconds", "10", "--grace", "60", "--think", "0.2", "--out", str(out)]
    )

    assert out.exists()
    assert result["lost"] == []
    assert result["db_checked"]
    writes = result["writes"]
    assert writes["answers"] > 0 and writes["files"] > 0 and writes["conversations"] > 0
    assert result["errors"] == 0, result["operations"]
    log = result["log"]
    assert log["server_5xx"] == 0, log["server_5xx_by_route"]
    assert log["database_locked"] == 0
    assert log["tracebacks"] == 0
    assert result["rss"]["peak_mb"] > 0
    done = {row["operation"]: row["count"] for row in result["operations"]}
    assert done["classify"] > 0 and done["upload"] > 0
    assert not soak.failed(result)
