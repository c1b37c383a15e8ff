"""Robustness run (issue 11): mutants and crafted bombs against a real 2-worker service.

1. Mutants: ``--mutants N`` per format (tests/fuzz/mutate.py: bit flips,
   inserts, truncation, huge length fields, duplicated chunks/segments/boxes,
   nesting), each sent to ``/v1/label``, ``/v1/verify`` and ``/v1/propagate``.
   Counted per format: statuses, the slowest request, 5xx, worker deaths, and
   peak worker RSS above the idle workers'. Every 200 from label or propagate
   must open in its independent reader (Pillow, pypdf, zipfile) when the upload
   did, and hold exactly one record.
2. Bombs: ``--bombs N`` of each crafted class from the issue sent at once
   (16 client threads) while a prober asks ``/healthz`` every 100 ms; reported
   is the slowest health answer.

    .venv/bin/python benchmarks/fuzz.py [--mutants 300] [--bombs 10] [--workers 2] [--json PATH]

Inputs are fixed by the seed; the numbers depend on the machine's load (printed).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelers.formats import get_handler, sniff  # noqa: E402
from tests.fuzz.mutate import SEED_BUILDERS, SHORT, mutants  # noqa: E402
from tests.fuzz.targets import open_independently  # noqa: E402
from tests.served import free_port  # noqa: E402

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
KEYS = {
    "keys": [
        {
            "name": "gen",
            "key": "gen-key",
            "producer": PRODUCER,
            "permissions": ["label", "verify", "read_records", "omit_explicit"],
        },
        {"name": "plat", "key": "plat-key", "platform": PLATFORM, "permissions": ["propagate"]},
    ]
}


# ------------------------------------------------------------------ service
class Service:
    def __init__(self, workers: int, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "AIGC_DATA_DIR": str(data_dir),
            "AIGC_API_KEYS": json.dumps(KEYS),
            "AIGC_LOG_LEVEL": "WARNING",
        }
        exe = Path(sys.executable).with_name("aigc-label")
        self.log = open(data_dir.parent / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(self.port), "--workers", str(workers)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the service did not start")
            time.sleep(0.3)
        while len(self.workers()) < workers:
            time.sleep(0.3)
        time.sleep(2)  # let the workers settle before the idle RSS is taken
        self.idle_rss = max(rss_kb(p) for p in self.workers())
        self.seen_workers = set(self.workers())

    def workers(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            pids += [int(c) for c in children]
        # uvicorn's multiprocess supervisor may also run a resource tracker: keep pythons
        return [p for p in pids if _is_worker(p)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def _is_worker(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing" in cmd or b"aigc-label" in cmd or b"spawn_main" in cmd


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Watch(threading.Thread):
    """Samples worker RSS and pids every 100 ms; optionally probes /healthz."""

    def __init__(self, service: Service, probe: bool = False) -> None:
        super().__init__(daemon=True)
        self.service, self.probe = service, probe
        self.peak_rss = 0
        self.deaths = 0
        self.health_max = 0.0
        self.health_fail = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        client = httpx.Client(timeout=10)
        while not self.stop_event.is_set():
            pids = set(self.service.workers())
            died = self.service.seen_workers - pids
            if died:
                self.deaths += len(died)
                self.service.seen_workers = pids | (self.service.seen_workers - died)
                self.service.seen_workers -= died
            self.service.seen_workers |= pids
            for pid in pids:
                self.peak_rss = max(self.peak_rss, rss_kb(pid))
            if self.probe:
                t0 = time.perf_counter()
                try:
                    ok = client.get(self.service.base + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.health_max = max(self.health_max, time.perf_counter() - t0)
                self.health_fail += not ok
            self.stop_event.wait(0.1)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


# ------------------------------------------------------------------ requests
def send(client: httpx.Client, base: str, endpoint: str, data: bytes) -> tuple[int, float, bytes]:
    t0 = time.perf_counter()
    if endpoint == "label":
        url, key, form = "/v1/label", "gen-key", {}
    elif endpoint == "verify":
        url, key, form = "/v1/verify", "gen-key", {"declared_ai": "true"}
    else:
        url, key, form = "/v1/propagate", "plat-key", {"declared_ai": "true"}
    try:
        resp = client.post(
            base + url,
            files={"file": ("upload", data)},
            data=form,
            headers={"Authorization": f"Bearer {key}"},
        )
        return resp.status_code, time.perf_counter() - t0, resp.content
    except httpx.HTTPError as exc:
        return 599, time.perf_counter() - t0, str(exc).encode()


def output_problem(upload: bytes, out: bytes) -> str | None:
    """Why a 200 body from label/propagate is not acceptable, or None."""
    try:
        media_type = sniff(out)
    except Exception as exc:
        return f"output does not sniff: {exc}"
    if media_type == "text/plain":
        return None
    meta = get_handler(media_type).read(out)
    records = {f.record for f in meta.records if f.record is not None}
    if len(records) != 1 or any(f.record is None for f in meta.records):
        return f"{len(meta.records)} records in the output"
    try:
        open_independently(upload, media_type)
    except Exception:
        return None  # the upload was already damaged: metadata-only writes keep it so
    try:
        open_independently(out, media_type)
    except Exception as exc:
        return f"output does not open: {exc}"
    return None


def run_mutants(service: Service, count: int, seed: int, formats: set[str] | None) -> list[dict]:
    rows = []
    client = httpx.Client(timeout=60)
    for media_type in SEED_BUILDERS:
        if formats and SHORT[media_type] not in formats:
            continue
        inputs = mutants(media_type, count, seed)
        watch = Watch(service)
        watch.start()
        statuses: collections.Counter[str] = collections.Counter()
        slowest, bad_outputs = 0.0, []

        def one(data: bytes) -> list[tuple[str, int, float, str | None]]:
            out = []
            for endpoint in ("label", "verify", "propagate"):
                status, seconds, body = send(client, service.base, endpoint, data)
                problem = None
                if status == 200 and endpoint != "verify":
                    problem = output_problem(data, body)
                out.append((endpoint, status, seconds, problem))
            return out

        with cf.ThreadPoolExecutor(2) as pool:
            for results in pool.map(one, inputs):
                for endpoint, status, seconds, problem in results:
                    statuses[f"{endpoint}:{status}"] += 1
                    slowest = max(slowest, seconds)
                    if problem:
                        bad_outputs.append(problem)
        watch.stop()
        row = {
            "format": SHORT[media_type],
            "mutants": count,
            "statuses": dict(sorted(statuses.items())),
            "5xx": sum(n for k, n in statuses.items() if k.split(":")[1].startswith("5")),
            "max_seconds": round(slowest, 2),
            "worker_deaths": watch.deaths,
            "peak_rss_above_idle_mb": round(max(watch.peak_rss - service.idle_rss, 0) / 1024, 1),
            "bad_outputs": bad_outputs[:5],
            "bad_output_count": len(bad_outputs),
        }
        print(json.dumps(row, ensure_ascii=False), flush=True)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ bombs
def bombs() -> dict[str, bytes]:
    from PIL import Image

    import tests.labelers.formats.test_hostile_inputs as crafted

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    png = out.getvalue()
    import struct
    import zlib

    packet = ("<x:xmpmeta>" + "<TC260:AIGC " * 90_000).encode()  # 1 MB of broken XMP
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(packet, 9)
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body))
    jpeg = io.BytesIO()
    Image.effect_noise((200, 200), 40).convert("RGB").save(jpeg, "JPEG")
    j = jpeg.getvalue()
    xmp_seg = b"http://ns.adobe.com/xap/1.0/\x00" + ("<x:xmpmeta>" + "<AIGC>" * 10_800).encode()
    app1 = b"\xff\xe1" + struct.pack(">H", len(xmp_seg) + 2) + xmp_seg
    regressions = sorted((ROOT / "tests/fuzz/regressions").glob("*.bin"))
    out_bombs = {
        "xmp-quadratic-png": png[:33] + chunk + png[33:],
        "xmp-quadratic-jpeg": j[:2] + app1 + j[2:],
        "yaml-alias": crafted._alias_bomb(),
        "pixel-amplification": crafted._huge_flat_png(10000, 10000),
    }
    for path in regressions:
        out_bombs[f"regression-{path.stem}"] = path.read_bytes()
    return out_bombs


def run_bombs(service: Service, count: int) -> dict:
    inputs = [(name, data) for name, data in bombs().items() for _ in range(count)]
    client = httpx.Client(timeout=120)
    watch = Watch(service, probe=True)
    watch.start()
    statuses: collections.Counter[str] = collections.Counter()
    slowest = 0.0

    def one(item: tuple[str, bytes]) -> list[tuple[str, int, float]]:
        name, data = item
        return [
            (name, *send(client, service.base, endpoint, data)[:2])
            for endpoint in ("label", "verify", "propagate")
        ]

    with cf.ThreadPoolExecutor(16) as pool:
        for results in pool.map(one, inputs):
            for name, status, seconds in results:
                statuses[f"{name}:{status}"] += 1
                slowest = max(slowest, seconds)
    watch.stop()
    summary = {
        "bombs_per_class": count,
        "classes": len(inputs) // max(count, 1),
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "5xx": sum(
            n
            for k, n in statuses.items()
            if k.rsplit(":", 1)[1].startswith("5") and not k.endswith(":503")
        ),
        "503": sum(n for k, n in statuses.items() if k.endswith(":503")),
        "max_request_seconds": round(slowest, 2),
        "healthz_max_seconds": round(watch.health_max, 3),
        "healthz_failures": watch.health_fail,
        "worker_deaths": watch.deaths,
        "peak_rss_above_idle_mb": round(max(watch.peak_rss - service.idle_rss, 0) / 1024, 1),
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=300)
    parser.add_argument("--bombs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--formats", help="comma-separated short names (jpeg,png,...); default: all"
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(args.workers, Path(tmp) / "var")
        try:
            print(f"idle worker RSS {service.idle_rss / 1024:.0f} MB", flush=True)
            formats = set(args.formats.split(",")) if args.formats else None
            rows = run_mutants(service, args.mutants, args.seed, formats) if args.mutants else []
            bomb = run_bombs(service, args.bombs) if args.bombs else {}
        finally:
            service.stop()
    print(f"load average {os.getloadavg()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"mutants": rows, "bombs": bomb}, indent=1))


if __name__ == "__main__":
    main()
