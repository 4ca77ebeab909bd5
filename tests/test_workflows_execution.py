"""Running per-patient jobs (rtplan.workflows.execution): order, absolute paths, progress
only on a terminal, and a Dask scheduler that cannot be used failing fast in one line.

Truths: the results of the plain in-process loop (for the pool and the cluster); a
wall-clock bound of the timeout plus slack for the unreachable schedulers.
"""

import io
import operator
import os
import socket
import time

import distributed
import pytest

from rtplan.errors import InputError
from rtplan.workflows.execution import absolute_paths, progress_bar, run_each, worker_count


def test_results_in_input_order_on_process_pool_and_dask_local_cluster():
    items = list(range(11))
    expected = [operator.neg(i) for i in items]
    assert list(run_each(operator.neg, items, jobs=1)) == expected
    assert list(run_each(operator.neg, items, jobs=2)) == expected
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as c:
        assert list(run_each(operator.neg, items, scheduler=c.scheduler_address)) == expected


def test_absolute_paths_keep_links_and_worker_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path, tmp_path / "link")
    assert absolute_paths(["link/P01", tmp_path]) == [
        str(tmp_path / "link" / "P01"),
        str(tmp_path),
    ]
    assert worker_count(None, 1) == 1 and worker_count(8, 3) == 3
    with pytest.raises(InputError, match="at least 1"):
        worker_count(0, 3)


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, drawn in ((io.StringIO(), False), (Tty(), True)):
        monkeypatch.setattr("sys.stderr", stream)
        with progress_bar(3, show=True) as bar:
            bar.update(3)
        assert ("3/3" in stream.getvalue()) is drawn
    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    with progress_bar(3, show=False) as bar:
        bar.update(3)
    assert tty.getvalue() == ""


@pytest.fixture
def silent_port():
    """A server that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["silent", "refused", "malformed"])
def test_unusable_scheduler_is_one_line_within_the_timeout(kind, silent_port):
    address = {
        "silent": f"tcp://127.0.0.1:{silent_port}",
        "refused": f"tcp://127.0.0.1:{_free_port()}",
        "malformed": "no-port-here",
    }[kind]
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        list(run_each(operator.neg, [1], scheduler=address, timeout_s=1.0))
    assert time.monotonic() - start < 5.0
    message = str(info.value)
    assert address in message and "\n" not in message
