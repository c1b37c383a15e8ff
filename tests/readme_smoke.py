"""README smoke test: a fresh clone in a temporary HOME runs every shell example.

Run by ``make smoke`` (and so by ``make test``); it is a script, not a pytest
module, because it builds a virtual environment and runs the service for
real, which takes a minute or two.

1. ``git clone`` of this repository's HEAD (committed work only) into a
   temporary directory. HOME is a new directory beside it; ``AIGC_*`` and
   ``XDG_*`` variables and any virtualenv on PATH are removed, so nothing of
   the developer's data directory, keys or tools is used.
2. The Dockerfile's install step, ``pip install '.[postgres]'``, in a clean
   ``python -m venv`` (no system site packages): the check CI can make
   without a Docker daemon. That venv becomes the clone's ``.venv`` with
   make's stamp touched, so ``make install`` and ``make run`` use it rather
   than reinstalling (what they would add is the dev extra, which no README
   example uses).
3. Every ```` ```sh ```` block of README.md runs in bash, in order, in the
   clone. ``make run`` is started in the background (on a free port, given
   as ``PORT``; ``localhost:8000`` in the examples is rewritten to it) and
   waited for; ``make test`` is skipped (it is what runs this script);
   ``docker`` lines are skipped where no Docker daemon answers. The example
   inputs the README names (``photos/``, ``docs/``, ``uploads/``, ``a.png``)
   are made first, in a folder of the new HOME: blocks that call ``make``
   run in the clone, the others there, outside it.
4. What each example must have produced is checked with independent readers
   where there are some: exiftool for the XMP record, a fresh Pillow decode
   for pixels, the JSONL reports, the ledger through ``aigc-label verify``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.imagery import photo  # noqa: E402

TIMEOUT = 900


def fail(message: str) -> None:
    print(f"readme smoke: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def say(message: str) -> None:
    print(f"readme smoke: {message}", flush=True)


def sh(cmd: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        fail(f"{cmd!r} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def shell_blocks(readme: str) -> list[list[str]]:
    """The ```sh blocks, each as its commands (continuation lines joined)."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", readme, flags=re.S | re.M):
        commands, current = [], ""
        for line in body.splitlines():
            current += line
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip():
                commands.append(current.strip())
            current = ""
        blocks.append(commands)
    return blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def make_inputs(work: Path) -> dict[str, bytes]:
    """The folders and files the README's examples name."""
    from fpdf import FPDF

    made: dict[str, bytes] = {}

    def put(rel: str, data: bytes) -> None:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
        made[rel] = data

    def image(seed: int, fmt: str) -> bytes:
        buf = io.BytesIO()
        photo(400, 300, seed).save(buf, fmt)
        return buf.getvalue()

    put("photos/beach.jpg", image(1, "JPEG"))
    put("photos/2026/city.png", image(2, "PNG"))
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="An AI-generated report.")
    put("docs/report.pdf", bytes(pdf.output()))
    put("docs/notes.md", b"# Notes\n\nA paragraph the model wrote.\n")
    put("uploads/post.jpg", image(3, "JPEG"))
    put("a.png", image(4, "PNG"))
    return made


def exiftool_record(path: Path) -> str:
    out = subprocess.run(["exiftool", "-b", "-XMP", str(path)], capture_output=True, text=True)
    return out.stdout


def main() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = shell_blocks(readme)
    if not blocks:
        fail("README.md has no ```sh blocks")
    with tempfile.TemporaryDirectory(prefix="aigc-smoke-") as tmp_dir:
        tmp = Path(tmp_dir)
        home, clone = tmp / "home", tmp / "clone"
        home.mkdir()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        path = [p for p in os.environ["PATH"].split(":") if ".venv" not in p and "/venv" not in p]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIGC_", "XDG_", "PYTHON", "VIRTUAL_ENV", "MAKE"))
        }
        port = free_port()
        # pip's download cache is not identity: keep it, or the clean install downloads all
        cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
        env |= {"HOME": str(home), "PATH": ":".join([str(home / ".local/bin"), *path])}
        env["PIP_CACHE_DIR"] = cache
        env["PORT"] = str(port)

        # 2. the Dockerfile's install step, in a clean venv
        started = time.monotonic()
        venv = clone / ".venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # a current pip first, as the Makefile does and as python:3.11-slim ships one:
        # the pip that venv bundles with 3.11 resolves the same set several times slower
        sh(f"{venv}/bin/pip install -q --upgrade pip", clone, env)
        sh(f"{venv}/bin/pip install -q '.[postgres]'", clone, env)
        (venv / ".installed").touch()
        sh(f"{venv}/bin/aigc-label --help", clone, env)
        say(f"clean venv: pip install '.[postgres]' took {time.monotonic() - started:.0f} s")

        # the command-line examples run in a folder of the user's, outside the clone:
        # the per-user data directory makes them meet the server's identity there
        work = home / "work"
        made = make_inputs(work)
        server = None
        ran: list[str] = []
        try:
            for commands in blocks:
                script: list[str] = []
                for command in commands:
                    if command.startswith("make test"):
                        say("skipped `make test` (it is what runs this smoke test)")
                        continue
                    if command.startswith("docker") and not docker_available():
                        say(f"skipped (no Docker daemon): {command[:60]}")
                        continue
                    if command.startswith("make run"):
                        server = subprocess.Popen(
                            ["make", "run"],
                            cwd=clone,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True,  # make and its server: one group to stop
                        )
                        wait_for(f"http://127.0.0.1:{port}/healthz", server)
                        ran.append("make run")
                        continue
                    script.append(command.replace("localhost:8000", f"localhost:{port}"))
                if script:
                    cwd = clone if any(c.startswith("make ") for c in commands) else work
                    out = sh("\n".join(script), cwd, env)
                    check_block(script, out, work, home, made)
                    ran.extend(script)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(30)
        say(f"ran {len(ran)} README commands from a fresh clone; outputs checked")


def wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            fail("`make run` exited before it served")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    fail("`make run` did not answer /healthz")


def check_block(
    script: list[str],
    out: subprocess.CompletedProcess[str],
    work: Path,
    home: Path,
    made: dict[str, bytes],
) -> None:
    text = "\n".join(script)
    if "make install" in text:
        link = home / ".local/bin/aigc-label"
        if not link.is_symlink() or not os.access(link, os.X_OK):
            fail("make install did not put aigc-label in ~/.local/bin")
        say("make install: aigc-label is on PATH")
    if "/v1/label/text" in text:
        data_dir = home / ".local/share/aigc-label"
        if not (data_dir / "dev-api-key").exists():
            fail(f"the server did not use the per-user data directory {data_dir}")
        if "人工智能生成" not in (work / "poem.txt").read_text(encoding="utf-8"):
            fail("the labelled poem carries no visible label")
        verdicts = re.findall(r'"classification":"(\w+)"', out.stdout)
        if verdicts != ["confirmed"]:
            fail(f"the server's verify of its own label said {verdicts}: {out.stdout[-500:]}")
        if "confirmed 1" not in out.stderr:
            fail(f"the CLI did not confirm the server's label: {out.stderr[-800:]}")
        say("curl label + verify: confirmed, and the CLI agrees (one data directory)")
    if "label photos/ docs/" in text:
        check_batch(work, made, out.stderr)
    if "label -" in text:
        before = Image.open(io.BytesIO(made["a.png"]))
        after = Image.open(work / "a-labelled.png")
        after.load()
        if after.size != before.size or np.array_equal(np.asarray(after), np.asarray(before)):
            fail("a-labelled.png is not a labelled copy of a.png")
        if "TC260" not in exiftool_record(work / "a-labelled.png"):
            fail("exiftool finds no TC260 record in a-labelled.png")
        say("stdin label: a-labelled.png carries the label and the record")


def check_batch(work: Path, made: dict[str, bytes], stderr: str) -> None:
    def lines(name: str) -> list[dict]:
        rows = [json.loads(x) for x in (work / name).read_text().splitlines() if x.strip()]
        return [r for r in rows if r["type"] == "file"]

    inputs = sorted(r.split("/", 1)[1] for r in made if r.startswith(("photos/", "docs/")))
    outputs = sorted(
        str(p.relative_to(work / "labelled")) for p in (work / "labelled").rglob("*") if p.is_file()
    )
    if outputs != inputs:
        fail(f"labelled/ does not mirror photos/ and docs/: {outputs} vs {inputs}")
    labelled = lines("label.jsonl")
    if len(labelled) != len(inputs) or {r["outcome"] for r in labelled} != {"labelled"}:
        fail(f"label.jsonl: {labelled}")
    for name in ("labelled/beach.jpg", "labelled/2026/city.png"):
        if "TC260" not in exiftool_record(work / name):
            fail(f"exiftool finds no TC260 record in {name}")
    verified = lines("verify.jsonl")
    if {r["classification"] for r in verified} != {"confirmed"} or len(verified) != len(inputs):
        fail(f"verify.jsonl: {verified}")
    # --position image=top-left,document=header: the photo's label is at the top left now
    original = np.asarray(Image.open(io.BytesIO(made["photos/beach.jpg"])).convert("L"), float)
    top = np.asarray(Image.open(work / "labelled-top/beach.jpg").convert("L"), float)
    h, w = original.shape
    corner = np.abs(top - original)[: h // 6, : w // 3].max()
    if corner < 60:
        fail("--position image=top-left did not put the label at the top left")
    if "failed" in stderr:
        fail(f"a batch run reported failures: {stderr[-1500:]}")
    published = lines_of_dir(work / "published")
    if published != ["post.jpg"] or "TC260" not in exiftool_record(work / "published/post.jpg"):
        fail(f"propagate did not write published/post.jpg with a record: {published}")
    say("label/verify/propagate over trees: mirrored, recorded, confirmed, positioned")


def lines_of_dir(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


if __name__ == "__main__":
    main()
