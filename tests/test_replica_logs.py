"""Where process replicas' logs go, and when they are removed.

A ``ProcessReplica`` given no ``log_dir`` writes to a temporary directory of its own and
removes it when it ends, unless ``keep_log=True``; the errors of a replica that failed
quote its output before the directory goes. Under the plugin, ``ntinv`` puts the logs in
the test's ``tmp_path``, which pytest keeps or removes by its retention policy, and a
failing test's report carries the end of each log as text.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from inner_pytest import INI

from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.operators import ProcessReplica, ReplicaError, Replicas

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

# Prints its identity and the clue it is given, says it is up, then waits to be stopped.
SERVE = (
    "import os, sys, time; "
    "print('hello from', os.environ['NTINV_IDENTITY'], sys.argv[1], flush=True); "
    "print('up', flush=True); time.sleep(60)"
)
# Says it is up, gives its reason, and exits with code 3 on its own.
DIE = "import sys; print('up', flush=True); print('gave up:', sys.argv[1], flush=True); sys.exit(3)"


def replica(server: FakeApiServer, script: str, clue: str, **options: object) -> ProcessReplica:
    """A ``proc-0`` replica running ``script`` with ``clue`` as its argument, ready at "up"."""
    return ProcessReplica(
        server, "proc-0", [sys.executable, "-c", script, clue], ready="up", **options
    )


# ------------------------------------------------------------------ ProcessReplica alone


def test_own_log_directory_is_removed_at_stop(ntinv_apiserver: FakeApiServer) -> None:
    r = replica(ntinv_apiserver, SERVE, "first").start()
    log_dir = r.log_path.parent
    assert log_dir.name.startswith("ntinv-replica-") and log_dir.is_dir()
    assert "hello from proc-0 first" in r.output()
    r.stop()
    assert not log_dir.exists()
    # A new start gets a new directory (the old one is gone), removed at its stop too.
    r.start()
    assert r.log_path.parent != log_dir and r.log_path.parent.is_dir()
    second = r.log_path.parent
    r.stop()
    assert not second.exists()


def test_own_log_directory_is_kept_when_asked(ntinv_apiserver: FakeApiServer) -> None:
    r = replica(ntinv_apiserver, SERVE, "kept", keep_log=True).start()
    try:
        r.stop()
        assert "hello from proc-0 kept" in r.log_path.read_text()
    finally:
        shutil.rmtree(r.log_path.parent)


def test_a_given_log_dir_is_never_removed(ntinv_apiserver: FakeApiServer, tmp_path: Path) -> None:
    r = replica(ntinv_apiserver, SERVE, "given", log_dir=tmp_path / "logs").start()
    r.stop()
    assert "hello from proc-0 given" in (tmp_path / "logs" / "proc-0.log").read_text()


def test_a_dead_replica_error_quotes_its_log_before_it_goes(
    ntinv_apiserver: FakeApiServer,
) -> None:
    r = replica(ntinv_apiserver, DIE, "no route to slack").start()
    log_dir = r.log_path.parent
    assert r.process is not None and r.process.wait(10) == 3
    with pytest.raises(ReplicaError, match="exited by itself with code 3") as e:
        r.stop()
    assert "gave up: no route to slack" in str(e.value)
    assert not log_dir.exists()


def test_a_failed_start_quotes_its_log_and_removes_it(ntinv_apiserver: FakeApiServer) -> None:
    script = "import sys; print('cannot connect:', sys.argv[1]); sys.exit(2)"
    r = ProcessReplica(
        ntinv_apiserver, "early", [sys.executable, "-c", script, "refused"], ready="never"
    )
    with pytest.raises(ReplicaError, match="exited with code 2 before it was ready") as e:
        r.start()
    assert "cannot connect: refused" in str(e.value)
    assert not r.log_path.parent.exists()


def test_replicas_remove_every_own_log_directory(ntinv_apiserver: FakeApiServer) -> None:
    argv = [sys.executable, "-c", SERVE, "many"]
    with Replicas.process(ntinv_apiserver, argv, 2, ready="up") as replicas:
        dirs = [r.log_path.parent for r in replicas]
        assert all(d.is_dir() for d in dirs) and dirs[0] != dirs[1]
    assert not any(d.exists() for d in dirs)


# ------------------------------------------------------------------ under the plugin


INNER = """
import sys
from pathlib import Path

SERVE = {serve!r}
DIE = {die!r}
RECORD = Path({record!r})

def note(name, path):
    with RECORD.open("a") as out:
        out.write(f"{{name}} {{path}}\\n")

def start(ntinv, script, clue):
    replicas = ntinv.start_process_replicas([sys.executable, "-c", script, clue], 1, ready="up")
    return replicas[0]

def test_passes(ntinv, tmp_path):
    r = start(ntinv, SERVE, "clue-passes")
    assert r.log_path.parent == tmp_path / "ntinv-replica-logs"
    note("passes", r.log_path)

def test_fails(ntinv):
    r = start(ntinv, SERVE, "clue-fails")
    note("fails", r.log_path)
    assert False, "deliberately"

def test_replica_dies(ntinv):
    r = start(ntinv, DIE, "clue-dies")
    note("dies", r.log_path)
    assert r.process.wait(10) == 3
"""


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        # pytest's default: every test's tmp_path is kept (the last 3 sessions' basetemps).
        ("all", {"passes", "fails", "dies"}),
        # Only failed tests' tmp_path is kept; "failed" means the call failed, so the test
        # whose replica died in teardown (an error, not a failure) loses its directory.
        ("failed", {"fails"}),
    ],
)
def test_logs_live_in_tmp_path_and_follow_its_retention_policy(
    pytester: pytest.Pytester, policy: str, kept: set[str]
) -> None:
    record = pytester.path / "logs.txt"
    pytester.makeini(INI + f"tmp_path_retention_policy = {policy}\n")
    pytester.makepyfile(INNER.format(serve=SERVE, die=DIE, record=str(record)))
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1, errors=1)
    paths = dict(line.split(" ", 1) for line in record.read_text().splitlines())
    assert set(paths) == {"passes", "fails", "dies"}
    assert {name for name, path in paths.items() if Path(path).exists()} == kept
    # The failing test's report has the end of its replica's log, and where it is.
    result.stdout.fnmatch_lines(
        [
            "*- ntinvariants replica logs -*",
            f"replica-0: {paths['fails']}",
            "  hello from replica-0 clue-fails",
        ]
    )
    # The replica that died: its teardown error quotes its output, whether or not the
    # directory is kept.
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_replica_dies*", "*exited by itself with code 3*"]
    )
    result.stdout.fnmatch_lines(["*gave up: clue-dies*"])


def test_without_tmp_path_each_replica_removes_its_own(pytester: pytest.Pytester) -> None:
    record = pytester.path / "logs.txt"
    pytester.makeini(INI)
    pytester.makepyfile(INNER.format(serve=SERVE, die=DIE, record=str(record)))
    result = pytester.runpytest("-p", "no:tmpdir", "-k", "not passes")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    paths = dict(line.split(" ", 1) for line in record.read_text().splitlines())
    assert all(Path(paths[name]).parent.name.startswith("ntinv-replica-") for name in paths)
    assert not any(Path(path).exists() for path in paths.values())
    # The report was made before the directory went.
    result.stdout.fnmatch_lines(
        ["*- ntinvariants replica logs -*", "*hello from replica-0 clue-fails"]
    )
