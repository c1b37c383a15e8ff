"""Batch labelling throughput: ``aigc-label label`` with 1 worker against 2 workers.

A generated mixed tree (JPEG and PNG photos, PDF, DOCX, Markdown and plain
text) is labelled by the real command line, once per worker count, each run
on a fresh data directory (ledger) and output tree, in the same invocation,
alternating the worker counts when repeated. Reported: wall time of the
whole command (process start included), the engine's own files/s from the
JSONL summary, and the 2-worker/1-worker ratio. The load average is printed
before each run: on a shared machine, numbers taken under load mean little.

    .venv/bin/python benchmarks/batch.py [--files 1000] [--repeat 1] [--keep DIR] [--max-load 0.5]

With ``--engine ray`` the same tree is labelled by the local engine with 2
workers, then by ``--engine ray`` with 1 and 2 worker actors on a Ray
cluster of 2 CPUs that the benchmark starts once (``ray start --head``, as a
user's cluster would be running already; the Ray start-up is not timed, each
run's actor start-up is). Reported: Ray 2 / local 2 (Ray's overhead on one
machine, target >= 0.85) and Ray 2 / Ray 1 (scaling, target >= 1.7).

    .venv/bin/python benchmarks/batch.py --engine ray [--files 1000] [--timeline]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("aigc-label")

PARAGRAPH = (
    "人工智能模型写出的这段文字用于测试批量标注的吞吐量。每个文件都要加上显式标识、"
    "隐式元数据记录和不可见水印，并写进台账。"
)


def photo(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth gradients plus texture, like a photograph rather than noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = rng.uniform(20, 60, 2)
    base = np.stack(
        [
            128 + 100 * np.sin(x / fx),
            128 + 90 * np.cos(y / fy),
            (x + y) * 255 / (width + height),
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)


def pdf_bytes(i: int) -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    for page in range(2):
        doc.add_page()
        doc.set_font("helvetica", size=11)
        doc.multi_cell(0, 6, f"Document {i}, page {page + 1}. " + "Generated text. " * 60)
    return bytes(doc.output())


def docx_bytes(i: int) -> bytes:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    paragraphs = "".join(
        f"<w:p><w:r><w:t>Paragraph {n} of document {i}, written by a model.</w:t></w:r></w:p>"
        for n in range(20)
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="word/document.xml"/>'
            "</Relationships>",
        )
        z.writestr(
            "word/document.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{w}"><w:body>'
            f"{paragraphs}<w:sectPr/></w:body></w:document>",
        )
    return buf.getvalue()


#: share of each kind in the tree (images 60%, documents 40%)
MIX = [("jpg", 40), ("png", 20), ("pdf", 10), ("docx", 10), ("md", 10), ("txt", 10)]


def make_tree(root: Path, count: int) -> dict[str, int]:
    rng = np.random.default_rng(45438)
    kinds = [kind for kind, share in MIX for _ in range(share)]
    made: dict[str, int] = {}
    pdf_cache: list[bytes] = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        path = root / f"set{i % 10}" / f"sub{i % 3}" / f"{i:04d}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind in ("jpg", "png"):
            width, height = int(rng.integers(320, 480)), int(rng.integers(260, 360))
            buf = io.BytesIO()
            image = Image.fromarray(photo(width, height, rng))
            image.save(buf, "JPEG", quality=88) if kind == "jpg" else image.save(buf, "PNG")
            data = buf.getvalue()
        elif kind == "pdf":
            if len(pdf_cache) < 20:  # fpdf2 is slow to build; vary the inputs a little
                pdf_cache.append(pdf_bytes(i))
            data = pdf_cache[i % len(pdf_cache)]
        elif kind == "docx":
            data = docx_bytes(i)
        elif kind == "md":
            data = f"# 报告 {i}\n\n- 一\n- 二\n\n{PARAGRAPH * 3}\n".encode()
        else:
            data = f"{i}. {PARAGRAPH * 4}\n\n{PARAGRAPH * 2}\n".encode()
        path.write_bytes(data)
        made[kind] = made.get(kind, 0) + 1
    return made


def label_run(
    tree: Path,
    work: Path,
    workers: int,
    max_load: float | None,
    engine: list[str] = (),
    timeline: bool = False,
) -> dict[str, float]:
    run_dir = work / f"run-w{workers}-{time.monotonic_ns()}"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_DATA_DIR"] = str(run_dir / "var")
    # development credentials and schema made before the clock starts, like a configured host
    subprocess.run([str(EXE), "verify", "-"], input=b"warm-up", env=env, capture_output=True)
    report = run_dir / "report.jsonl"
    if timeline:  # every process of the run appends its start-up events here
        env["AIGC_RAY_TIMELINE"] = str(run_dir / "timeline.jsonl")
    if max_load is not None:
        deadline = time.monotonic() + 900
        while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
            time.sleep(5)
    load = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = str(run_dir / "out")
    command = [str(EXE), "label", str(tree), "--out", out, "--report", str(report)]
    command += ["--workers", str(workers), "--no-progress", *engine]
    proc = subprocess.run(command, env=env, capture_output=True)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"label run failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    summary = next(line for line in lines if line["type"] == "summary")
    labelled = summary["counts"].get("labelled", 0)
    events = ""
    if timeline:
        from app.batch.timeline import read, render

        events = render(read(env["AIGC_RAY_TIMELINE"]))
    shutil.rmtree(run_dir)
    return {
        "workers": workers,
        "files": labelled,
        "wall_s": wall,
        "wall_files_per_s": labelled / wall,
        "engine_files_per_s": summary["files_per_second"],
        # Ray: the rate once the actors are up (their start-up is in the engine rate above)
        "warm_files_per_s": _warm_rate(summary, labelled),
        "load_before": load,
        "cpu_ms_per_file": 1000 * cpu / max(labelled, 1),
        "timeline": events,
    }


def start_ray(work: Path, cpus: int) -> tuple[subprocess.Popen, str]:
    """A one-node Ray cluster (``ray start --head --block``) and its address."""
    port = 20000 + os.getpid() % 20000
    address = f"127.0.0.1:{port}"
    ray = str(EXE.with_name("ray"))
    proc = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
         str(port), "--num-cpus", str(cpus), "--include-dashboard", "false",
         "--object-store-memory", str(200 * 2**20), "--temp-dir", str(work / "ray")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    probe = "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR')"
    for _ in range(120):
        check = subprocess.run([sys.executable, "-c", probe, address], capture_output=True)
        if check.returncode == 0:
            return proc, address
        time.sleep(1)
    proc.terminate()
    sys.exit("ray start --head did not come up")


def ray_main(args: argparse.Namespace, tree: Path, work: Path) -> None:
    """Local 2 workers, Ray 1 and Ray 2 workers on the same tree, in one invocation."""
    # the cluster is started with Ray's token authentication: its drivers send the token
    os.environ["RAY_AUTH_MODE"] = "token"
    # its own token, for its own cluster: `ray start` refuses token mode without one, and a
    # fresh host has no ~/.ray/auth_token (the drivers it starts inherit this environment)
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray starts workers at nice 15; the local engine's run at 0: the same priority for both
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 (Ray spells it so)
    head, address = start_ray(work, 2)
    engine = ["--engine", "ray", "--address", address]  # the default --batch-size
    runs = [("local", 2, []), ("ray", 1, engine), ("ray", 2, engine)]
    results: dict[tuple[str, int], list[dict[str, float]]] = {(n, w): [] for n, w, _ in runs}
    try:
        for _ in range(args.repeat):
            for name, workers, extra in runs:
                r = label_run(tree, work, workers, args.max_load, extra, args.timeline and extra)
                results[(name, workers)].append(r)
                print(
                    f"  {name} workers={workers}: {r['files']:.0f} files in {r['wall_s']:.1f} s "
                    f"wall ({r['wall_files_per_s']:.1f} files/s; engine "
                    f"{r['engine_files_per_s']:.1f} files/s, warm {r['warm_files_per_s']:.1f}), "
                    f"load before {r['load_before']:.2f}"
                )
                if r["timeline"]:
                    print("    start-up timeline (s since the driver process started):")
                    print("\n".join("    " + line for line in r["timeline"].splitlines()))
    finally:
        os.killpg(head.pid, 15)
        head.wait(timeout=120)
    print()
    print("| engine | workers | wall s | files/s (wall) | files/s (engine) | files/s (warm) |")
    print("|---|---|---|---|---|---|")
    medians = {}
    keys = ("wall_files_per_s", "engine_files_per_s", "warm_files_per_s")
    for (name, workers), rs in results.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        medians[(name, workers)] = [statistics.median(r[k] for r in rs) for k in keys]
        rates = " | ".join(f"{v:.1f}" for v in medians[(name, workers)])
        print(f"| {name} | {workers} | {wall:.1f} | {rates} |")
    over = [medians[("ray", 2)][i] / medians[("local", 2)][i] for i in (0, 1, 2)]
    scale = [medians[("ray", 2)][i] / medians[("ray", 1)][i] for i in (0, 1, 2)]
    print(
        f"\nray 2 / local 2 workers: {over[0]:.2f} wall, {over[1]:.2f} engine, "
        f"{over[2]:.2f} warm (target >= 0.85)"
    )
    print(
        f"ray 2 / ray 1 workers: {scale[0]:.2f}x wall, {scale[1]:.2f}x engine, "
        f"{scale[2]:.2f}x warm (target >= 1.7x)"
    )


def _warm_rate(summary: dict, files: int) -> float:
    first = summary.get("first_result")
    if first is None or summary["seconds"] <= first:
        return summary["files_per_second"]
    return files / (summary["seconds"] - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count")
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="ray: print each Ray run's start-up timeline (driver, listing and actor events)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        help="before each run wait (up to 15 min) until the 1-minute load average is below this",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aigc-batch-bench-"))
    tree = args.keep or work / "tree"
    try:
        if not tree.exists():
            started = time.perf_counter()
            made = make_tree(tree, args.files)
            print(f"tree: {args.files} files {made} in {time.perf_counter() - started:.1f} s")
        print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
        if args.engine == "ray":
            ray_main(args, tree, work)
            return
        results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for workers in (1, 2):
                r = label_run(tree, work, workers, args.max_load)
                results[workers].append(r)
                print(
                    f"  workers={workers}: {r['files']:.0f} files in {r['wall_s']:.1f} s wall "
                    f"({r['wall_files_per_s']:.1f} files/s; engine {r['engine_files_per_s']:.1f} "
                    f"files/s), {r['cpu_ms_per_file']:.1f} ms CPU/file, "
                    f"load before {r['load_before']:.2f}"
                )
        print()
        print("| workers | wall s | files/s (wall) | files/s (engine) | CPU ms/file |")
        print("|---|---|---|---|---|")
        medians = {}
        for workers, runs in results.items():
            wall = statistics.median(r["wall_s"] for r in runs)
            rate = statistics.median(r["wall_files_per_s"] for r in runs)
            engine = statistics.median(r["engine_files_per_s"] for r in runs)
            cpu = statistics.median(r["cpu_ms_per_file"] for r in runs)
            medians[workers] = (rate, engine)
            print(f"| {workers} | {wall:.1f} | {rate:.1f} | {engine:.1f} | {cpu:.1f} |")
        ratio_wall = medians[2][0] / medians[1][0]
        ratio_engine = medians[2][1] / medians[1][1]
        print(f"\nratio 2/1 workers: {ratio_wall:.2f}x wall, {ratio_engine:.2f}x engine")
        print("target: >= 1.7x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
