"""Throughput and latency of POST /v1/label/text against a bare FastAPI echo.

Both apps are served the same way (uvicorn, same worker count, loopback) in
the same run and loaded by wrk with the same body and concurrency; the result
is a ratio, since absolute numbers on a shared machine mean little.

    .venv/bin/python benchmarks/text.py [--rounds 3] [--seconds 6] [--update-docs]

Needs wrk (Debian package `wrk`; the script installs it with apt-get when run
as root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine, update_section  # noqa: E402
from tests.served import free_port  # noqa: E402

TEXT = "人工智能正在改变内容生产的方式。" * 20 + "\n\n" + "第二段文本，用于测试。" * 10
KEY = "bench-key"
KEYS = {
    "keys": [
        {"name": "bench", "key": KEY, "producer": "0011911100007109120X0010001"},
    ]
}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        return shutil.which("wrk") or sys.exit("wrk did not install")
    sys.exit("install wrk (Debian package 'wrk') to run this benchmark")


def start(app: str, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **env},
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/docs", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{app} did not start")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and its descendants, from /proc.

    Unlike req/s, CPU time per request hardly moves when other processes load the
    machine: on an idle machine a single worker's req/s is about its inverse.
    """
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def wrk(url: str, body: str, headers: dict[str, str], seconds: int, conns: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = [==[{body}]==]\n")  # Lua long string: raw UTF-8, no escapes
        for k, v in headers.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
        f.write(
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests,'
            " summary.errors.status + summary.errors.connect + summary.errors.read"
            " + summary.errors.write + summary.errors.timeout,"
            " summary.duration, latency:percentile(50), latency:percentile(99)))\n"
            "end\n"
        )
        script = f.name
    proc = subprocess.run(
        [ensure_wrk(), "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script)
    found = re.search(r"RESULT (.*)", proc.stdout)
    if not found:
        sys.exit(f"wrk failed: {proc.stdout}{proc.stderr}")
    req, errors, duration_us, p50, p99 = map(int, found.group(1).split())
    return {
        "requests": req,
        "rps": req / (duration_us / 1e6),
        "errors": errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


def mark_cost() -> str:
    """How many characters the invisible mark adds to the benchmark body (library call)."""
    from labelers.pipeline import label_text
    from labelers.record import Record

    record = Record.first_write(KEYS["keys"][0]["producer"], "01JD8Z5K3M7Q2R4T6V8W0XYZAB")
    bare = label_text(TEXT, record, watermark=False)
    marked = label_text(TEXT, record)
    return (
        f"{len(marked)} characters for {len(TEXT)} in, of which the invisible mark "
        f"{len(marked) - len(bare)} ({(len(marked) - len(bare)) / len(bare):.1%} of the "
        "explicitly labelled text)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=6, help="per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="echo/label runs, alternated")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = ap.parse_args()
    body = json.dumps({"text": TEXT}, ensure_ascii=False)
    runs: dict[str, list[dict]] = {"echo": [], "label": []}
    before = machine()
    with tempfile.TemporaryDirectory() as data:
        env = {
            "AIGC_DATA_DIR": data,
            "AIGC_API_KEYS": json.dumps(KEYS),
            "AIGC_LOG_LEVEL": "WARNING",
        }
        targets = {
            "echo": ("benchmarks.echo_app:create_app", "/echo", {}),
            "label": (
                "app.main:create_app",
                "/v1/label/text",
                {"Authorization": f"Bearer {KEY}"},
            ),
        }
        servers = {name: start(app, args.workers, env) for name, (app, _, _) in targets.items()}
        try:
            for name, (_, path, headers) in targets.items():  # warm-up
                hdrs = {"Content-Type": "application/json", **headers}
                wrk(servers[name][1] + path, body, hdrs, 2, args.connections)
            # alternate, so a load spike on this shared machine hits both alike
            for _ in range(args.rounds):
                for name, (_, path, headers) in targets.items():
                    hdrs = {"Content-Type": "application/json", **headers}
                    url = servers[name][1] + path
                    cpu = cpu_seconds(servers[name][0].pid)
                    run = wrk(url, body, hdrs, args.seconds, args.connections)
                    run["cpu_ms"] = 1000 * (cpu_seconds(servers[name][0].pid) - cpu)
                    run["cpu_ms"] /= max(1, run["requests"])
                    runs[name].append(run)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()
    med = {
        name: {
            k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "cpu_ms")
        }
        | {"errors": sum(r["errors"] for r in rs)}
        for name, rs in runs.items()
    }
    lines = [
        f"Text body of {len(TEXT)} characters, {args.connections} concurrent connections "
        f"(wrk), {args.workers} uvicorn worker(s) per app, {args.rounds} alternated runs "
        f"of {args.seconds} s each; medians.",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | server CPU ms/request | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("echo", "bare FastAPI JSON echo (baseline)"),
        ("label", "POST /v1/label/text"),
    ):
        r = med[name]
        lines.append(
            f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['cpu_ms']:.2f} | {r['errors']} |"
        )
    ratio = med["label"]["rps"] / med["echo"]["rps"]
    lines += [
        "",
        f"**Ratio label/echo req/s: {ratio:.2f}** (target >= 0.7); ratio of server CPU "
        f"per request echo/label: {med['echo']['cpu_ms'] / med['label']['cpu_ms']:.2f} "
        "(what req/s would be on an idle machine with one worker each).",
        "",
        f"The labelled body: {mark_cost()}.",
        "",
        f"Command: `.venv/bin/python benchmarks/text.py --rounds {args.rounds} "
        f"--seconds {args.seconds} --update-docs`",
        "",
        f"Machine before: {before}",
        "",
        f"Machine after: {machine()}",
    ]
    report = "\n".join(lines)
    print(report)
    if args.update_docs:
        update_section("Text", report)


if __name__ == "__main__":
    main()
