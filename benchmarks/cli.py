"""One-shot command-line cost: ``aigc-label label`` against exiftool, in the same run.

Scripts call the CLI once per file, so start-up is most of what a call costs.
Timed, interleaved round after round (median kept), each as a fresh process:

* one metadata-only label of a JPEG (``--explicit none --no-watermark
  --no-c2pa``, into a new output directory each round) against exiftool
  writing the same XMP property (``XMP-TC260:AIGC``, through a user-defined
  tag table) into the same file;
* the same over a directory of 40 JPEGs (one process each side);
* ``aigc-label --help`` against a bare ``python -c pass``;
* with ``--before DIR`` (a checkout of an older commit, e.g. from
  ``git archive``), the same one-file label by that code
  (``python -m app.cli`` with ``PYTHONPATH=DIR``, same venv), so a speed-up
  is measured in the same run too.

Wall time and CPU time (user + system of the child) are both reported: on a
shared machine the wall time carries the load, the CPU time less so. The
data directory is prepared once (development key, ledger schema) so the
rounds measure the steady state a user meets from the second call on.
Python's bytecode cache is on, as on a user's machine
(``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment).

    .venv/bin/python benchmarks/cli.py [--rounds 7] [--before DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, table
from tests.support import EXIFTOOL_CONFIG

EXE = str(Path(sys.executable).with_name("aigc-label"))
RECORD = (
    '{"Label":"1","ContentProducer":"001100000000TESTONLY0010000","ProduceID":"01JBENCH",'
    '"ReservedCode1":"","ContentPropagator":"001100000000TESTONLY0010000",'
    '"PropagateID":"01JBENCH","ReservedCode2":""}'
)


def _jpeg(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _timed(
    job: list[str] | tuple[list[str], dict[str, str], Path], env: dict[str, str]
) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process; it must succeed."""
    cmd, env, cwd = job if isinstance(job, tuple) else (job, env, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        one = tmp / "a.jpg"
        one.write_bytes(_jpeg(0))
        many = tmp / "forty"
        many.mkdir()
        for i in range(40):
            (many / f"{i:02d}.jpg").write_bytes(_jpeg(i + 1))
        config = tmp / "exiftool.config"
        config.write_text(EXIFTOOL_CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["AIGC_DATA_DIR"] = str(tmp / "data")
        counter = iter(range(10**9))

        def out() -> str:
            return str(tmp / f"out-{next(counter)}")

        label = ["label", "--explicit", "none", "--no-watermark", "--no-c2pa", "--no-progress"]
        exif = ["exiftool", "-config", str(config), "-q", f"-XMP-TC260:AIGC={RECORD}"]
        jobs = {
            "aigc-label label (1 JPEG)": lambda: [EXE, *label, str(one), "--out", out()],
            "exiftool (1 JPEG)": lambda: [*exif, str(one), "-o", out() + ".jpg"],
            "aigc-label label (40 JPEGs)": lambda: [EXE, *label, str(many), "--out", out()],
            "exiftool (40 JPEGs)": lambda: [*exif, str(many), "-o", out() + "/"],
            "aigc-label --help": lambda: [EXE, "--help"],
            "python -c pass": lambda: [sys.executable, "-c", "pass"],
        }
        if args.before:
            old_env = {**env, "PYTHONPATH": str(args.before.resolve())}
            old_cli = [sys.executable, "-m", "app.cli", *label]
            # run from that directory: python -m puts the working directory first on sys.path
            jobs["before: label (1 JPEG)"] = lambda: (
                [*old_cli, str(one), "--out", out()],
                old_env,
                args.before,
            )
        # prepare the data directory (key, ledger schema) and the bytecode caches
        for make in jobs.values():
            _timed(make(), env)
        walls: dict[str, list[float]] = {name: [] for name in jobs}
        cpus: dict[str, list[float]] = {name: [] for name in jobs}
        load_before = machine()
        for _ in range(args.rounds):
            for name, make in jobs.items():
                wall, cpu = _timed(make(), env)
                walls[name].append(wall)
                cpus[name].append(cpu)
        load_after = machine()

    wall = {k: statistics.median(v) for k, v in walls.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    pairs = [
        ("one metadata-only label", "aigc-label label (1 JPEG)", "exiftool (1 JPEG)", 3.0),
        ("40 files, one process", "aigc-label label (40 JPEGs)", "exiftool (40 JPEGs)", None),
        ("`--help`", "aigc-label --help", "python -c pass", None),
    ]
    if args.before:
        pairs.insert(1, ("the same, before", "before: label (1 JPEG)", "exiftool (1 JPEG)", None))
        pairs.append(
            (
                "one label, this code vs before",
                "aigc-label label (1 JPEG)",
                "before: label (1 JPEG)",
                None,
            )
        )
    rows = []
    for what, ours, peer, target in pairs:
        rows.append(
            [
                what,
                f"{wall[ours]:.3f} s / {cpu[ours]:.3f} s",
                f"{peer}: {wall[peer]:.3f} s / {cpu[peer]:.3f} s",
                f"**{wall[ours] / wall[peer]:.2f}** / {cpu[ours] / cpu[peer]:.2f}",
                f"<= {target:.0f}x" if target else "",
            ]
        )
    print(
        table(
            ["run", "aigc-label: wall / CPU", "peer: wall / CPU", "ratio wall / CPU", "target"],
            rows,
        )
    )
    print(f"\nmedian of {args.rounds} interleaved rounds after one warm-up round")
    print(f"\nMachine before: {load_before}\n\nMachine after: {load_after}")


if __name__ == "__main__":
    main()
