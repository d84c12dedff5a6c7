"""ElasticPool: short jobs share one thread, blocked jobs get threads of their own."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from perdure.worker.pool import ElasticPool


def _wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_burst_of_short_jobs_runs_on_one_thread() -> None:
    pool = ElasticPool(32, "t")
    done: list[int] = []
    for i in range(500):
        pool.submit(done.append, i)
    _wait_until(lambda: len(done) == 500)
    assert done == list(range(500))  # one thread: in submission order
    assert pool.peak_threads == 1
    pool.shutdown(wait=True)


def test_jobs_one_after_another_reuse_the_idle_thread() -> None:
    pool = ElasticPool(32, "t")
    for _ in range(50):
        ran = threading.Event()
        pool.submit(ran.set)
        assert ran.wait(5)
    assert pool.peak_threads == 1
    pool.shutdown(wait=True)


def test_blocked_jobs_each_get_a_thread() -> None:
    # Eight jobs that can only finish together: they must run at once.
    pool = ElasticPool(32, "t")
    barrier = threading.Barrier(8, timeout=5)
    passed: list[int] = []
    lock = threading.Lock()

    def meet() -> None:
        barrier.wait()
        with lock:
            passed.append(1)

    t0 = time.monotonic()
    for _ in range(8):
        pool.submit(meet)
    _wait_until(lambda: len(passed) == 8)
    assert time.monotonic() - t0 < 2  # a stall or two, not a job after another
    assert pool.peak_threads == 8  # one per blocked job, no more
    pool.shutdown(wait=True)


def test_never_more_threads_than_max() -> None:
    pool = ElasticPool(3, "t")
    release = threading.Event()
    running = 0
    most = 0
    finished: list[int] = []
    lock = threading.Lock()

    def hold(i: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
            finished.append(i)

    for i in range(10):
        pool.submit(hold, i)
    _wait_until(lambda: running == 3)
    time.sleep(0.1)  # many stalls: still three
    assert most == 3 and pool.threads == 3
    release.set()
    _wait_until(lambda: len(finished) == 10)
    assert sorted(finished) == list(range(10))
    assert pool.peak_threads == 3
    pool.shutdown(wait=True)


def test_a_job_that_raises_is_logged_and_the_thread_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ElasticPool(4, "t")

    def boom() -> None:
        raise ValueError("kaput")

    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="perdure.worker"):
        pool.submit(boom)
        pool.submit(ran.set)
        assert ran.wait(5)
    assert any("kaput" in (r.exc_text or "") for r in caplog.records)
    pool.shutdown(wait=True)


def test_shutdown_with_wait_runs_the_queued_jobs() -> None:
    pool = ElasticPool(1, "t")
    gate = threading.Event()
    done: list[int] = []
    pool.submit(gate.wait, 5)
    for i in range(5):
        pool.submit(done.append, i)
    threading.Timer(0.05, gate.set).start()
    pool.shutdown(wait=True)
    assert done == list(range(5))
    assert pool.threads == 0
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(done.append, 99)


def test_shutdown_without_wait_drops_the_queued_jobs() -> None:
    pool = ElasticPool(1, "t")
    gate = threading.Event()
    started = threading.Event()
    done: list[int] = []

    def first() -> None:
        started.set()
        gate.wait(5)
        done.append(-1)

    pool.submit(first)
    assert started.wait(5)
    for i in range(5):
        pool.submit(done.append, i)
    t0 = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - t0 < 1  # does not wait for the running job
    gate.set()
    _wait_until(lambda: pool.threads == 0)
    assert done == [-1]  # the running job finished; the queued ones never ran


def test_idle_threads_exit_but_the_last() -> None:
    pool = ElasticPool(8, "t", idle_seconds=0.05)
    gate = threading.Event()
    for _ in range(4):
        pool.submit(gate.wait, 5)
    _wait_until(lambda: pool.threads == 4)
    gate.set()
    _wait_until(lambda: pool.threads == 1)
    time.sleep(0.2)
    assert pool.threads == 1
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)
    pool.shutdown(wait=True)


def test_max_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ElasticPool(0, "t")


def test_no_job_is_stranded_when_notices_meet_idle_timeouts() -> None:
    # Idle threads time out all the time here, so notifies keep meeting waits that are
    # timing out (the wait then reports a timeout though it took the notice). Were such
    # a notice counted as still on its way, a later job on the quiet pool would wait for
    # a thread that is not coming, until some idle timeout.
    pool = ElasticPool(4, "t", idle_seconds=0.0001)
    done: list[int] = []
    lock = threading.Lock()

    def job(i: int) -> None:
        with lock:
            done.append(i)

    for i in range(6000):
        pool.submit(job, i)
        if i % 3 == 0:
            time.sleep(0.0001)
    _wait_until(lambda: len(done) == 6000, timeout=30)
    assert sorted(done) == list(range(6000))
    pool.idle_seconds = 60  # from now on an idle timeout would not come in time
    time.sleep(0.05)  # the threads settle into their long waits
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(3)
    pool.shutdown(wait=True)


def test_a_thread_that_cannot_start_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ElasticPool(4, "t")
    gate = threading.Event()
    started = threading.Event()

    def first() -> None:
        started.set()
        gate.wait(5)

    pool.submit(first)
    assert started.wait(5)
    real_start = threading.Thread.start
    refusals: list[str] = []

    def refuse(self: threading.Thread) -> None:
        refusals.append(self.name)
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    ran = threading.Event()
    pool.submit(ran.set)  # queued behind the blocked job; the watcher fails to add a thread
    _wait_until(lambda: len(refusals) >= 2)  # and keeps trying
    assert not ran.is_set()
    monkeypatch.setattr(threading.Thread, "start", real_start)
    assert ran.wait(5)  # the next try starts a thread for it, the first job still blocked
    assert not gate.is_set() and pool.threads == 2
    gate.set()
    pool.shutdown(wait=True)


def test_a_job_no_thread_can_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ElasticPool(4, "t")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start"):
        pool.submit(print, "never")
    monkeypatch.undo()
    ran = threading.Event()
    pool.submit(ran.set)  # the refused job was not left queued in front of it
    assert ran.wait(5)
    assert pool.threads == 1
    pool.shutdown(wait=True)


def test_jobs_submitted_together_run_in_order_and_blocked_ones_still_get_threads() -> None:
    pool = ElasticPool(32, "t")
    done: list[int] = []
    pool.submit_many([(done.append, (i,)) for i in range(300)])
    _wait_until(lambda: len(done) == 300)
    assert done == list(range(300))
    barrier = threading.Barrier(4, timeout=5)
    met: list[int] = []
    pool.submit_many([(lambda: met.append(barrier.wait()), ()) for _ in range(4)])
    _wait_until(lambda: len(met) == 4)  # four jobs that can only finish together
    assert pool.peak_threads == 4
    pool.shutdown(wait=True)


def test_jobs_submitted_together_that_no_thread_can_run_are_all_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = ElasticPool(4, "t")
    monkeypatch.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(
        RuntimeError("can't start new thread")))
    ran: list[int] = []
    with pytest.raises(RuntimeError, match="can't start"):
        pool.submit_many([(ran.append, (0,)), (ran.append, (0,))])
    monkeypatch.undo()
    pool.submit_many([(ran.append, (1,))])
    _wait_until(lambda: 1 in ran)
    pool.shutdown(wait=True)
    assert ran == [1]  # none of the refused ones was left queued to run
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit_many([(print, ("late",))])
