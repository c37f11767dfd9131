import threading
import time

import pytest

from cos_core.preview import LatestOnlyWorker


def slow_render(job):
    time.sleep(0.05)
    return f"rendered {job}"


@pytest.fixture
def make_worker():
    workers = []

    def make(render):
        worker = LatestOnlyWorker(render, name="cos-preview-test")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


def test_submit_never_waits_for_a_slow_render(make_worker):
    worker = make_worker(slow_render)
    durations = []
    for job in range(10):
        start = time.perf_counter()
        worker.submit(job)
        durations.append(time.perf_counter() - start)
        time.sleep(0.005)  # a fast sampler: much quicker than one render
    assert max(durations) < 0.025, durations  # well under one 50 ms render, with room for a busy CI machine


def test_jobs_submitted_during_a_render_are_dropped_for_the_newest(make_worker):
    worker = make_worker(slow_render)
    for job in range(10):
        worker.submit(job)
        time.sleep(0.005)
    worker.drain()
    assert worker.dropped > 0
    assert worker.rendered + worker.dropped == 10
    assert worker.rendered < 10
    assert worker.take() == "rendered 9"
    assert worker.take() is None


def test_take_before_any_result_is_none(make_worker):
    worker = make_worker(slow_render)
    assert worker.take() is None
    worker.submit("a")
    assert worker.take() is None  # still rendering
    worker.drain()
    assert worker.take() == "rendered a"


def test_each_result_is_taken_once_and_newer_results_replace_older(make_worker):
    worker = make_worker(lambda job: job * 2)
    worker.submit(1)
    worker.drain()
    worker.submit(2)
    worker.drain()
    assert worker.take() == 4
    assert worker.take() is None
    assert worker.rendered == 2 and worker.dropped == 0


def test_render_runs_on_the_worker_thread(make_worker):
    seen = []
    worker = make_worker(lambda job: seen.append(threading.current_thread()) or job)
    worker.submit("x")
    worker.drain()
    assert seen and seen[0] is not threading.current_thread()
    assert seen[0].daemon and seen[0].name == "cos-preview-test"


def test_a_failing_render_does_not_kill_the_worker(make_worker, caplog):
    def render(job):
        if job == "bad":
            raise RuntimeError("boom")
        return f"ok {job}"

    worker = make_worker(render)
    worker.submit("bad")
    worker.drain()
    assert worker.take() is None
    assert "preview rendering failed" in caplog.text
    worker.submit("good")
    worker.drain()
    assert worker.take() == "ok good"
    assert worker._thread.is_alive()


def test_a_render_returning_none_leaves_no_result(make_worker):
    worker = make_worker(lambda job: None)
    worker.submit(1)
    worker.drain()
    assert worker.take() is None and worker.rendered == 0


def test_close_stops_the_thread(make_worker):
    worker = make_worker(slow_render)
    assert worker._thread.is_alive()
    worker.close()
    assert not worker._thread.is_alive()


def test_close_during_a_render_stops_the_thread_after_it(make_worker):
    worker = make_worker(slow_render)
    worker.submit(1)
    time.sleep(0.01)
    worker.submit(2)  # pending, dropped by close
    worker.close()
    assert not worker._thread.is_alive()
    assert worker.rendered <= 1


def test_drain_after_close_returns_at_once(make_worker):
    worker = make_worker(slow_render)
    worker.close()
    worker.submit(1)
    start = time.perf_counter()
    worker.drain(timeout=2.0)
    assert time.perf_counter() - start < 0.5
