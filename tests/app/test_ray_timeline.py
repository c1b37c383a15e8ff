"""The Ray run's start-up timeline (app/batch/timeline.py): no Ray needed."""

from __future__ import annotations

import subprocess
import sys
import time

from app.batch import timeline


def test_mark_writes_nothing_unless_a_timeline_file_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv(timeline.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    timeline.mark("driver", "nothing to see")
    assert list(tmp_path.iterdir()) == []


def test_each_process_notes_its_own_start_once_then_its_events(tmp_path, monkeypatch):
    path = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(timeline.ENV, str(path))
    monkeypatch.setattr(timeline, "_started_noted", set())
    timeline.mark("driver", "one")
    timeline.mark("driver", "two", files=3)
    before_child = time.time()
    code = "from app.batch.timeline import mark; mark('actor', 'constructor entered')"
    subprocess.run([sys.executable, "-c", code], check=True)
    events = timeline.read(str(path))

    starts = [e for e in events if e["event"] == "process started"]
    assert sorted(e["who"] for e in starts) == ["actor", "driver"]  # once per process
    [child_start] = [e for e in starts if e["who"] == "actor"]
    [child_event] = [e for e in events if e["event"] == "constructor entered"]
    assert child_start["pid"] == child_event["pid"]
    # the kernel's start time of the child: after it was launched, before its own event
    # (clock-tick resolution: 10 ms)
    assert before_child - 0.02 <= child_start["t"] <= child_event["t"]
    [two] = [e for e in events if e["event"] == "two"]
    assert two["files"] == 3
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_render_counts_from_the_driver_start_and_names_each_actor():
    events = [
        {"t": 100.0, "pid": 1, "who": "driver", "event": "process started"},
        {"t": 101.5, "pid": 7, "who": "actor", "event": "process started"},
        {"t": 101.6, "pid": 8, "who": "actor", "event": "process started"},
        {"t": 104.25, "pid": 8, "who": "actor", "event": "first batch started", "files": 32},
        {"t": 105.0, "pid": 1, "who": "driver", "event": "first result received"},
    ]
    lines = timeline.render(events).splitlines()
    assert lines[0].split() == ["0.00", "s", "driver", "process", "started"]
    assert lines[1].split()[:3] == ["1.50", "s", "actor1"]
    assert lines[3].split() == ["4.25", "s", "actor2", "first", "batch", "started", "files=32"]
    assert lines[4].split()[:3] == ["5.00", "s", "driver"]
    assert timeline.render([]) == "(no timeline events)"
