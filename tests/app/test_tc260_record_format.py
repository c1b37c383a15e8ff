"""AIGC_RECORD_FORMAT=tc260: the service writes ReservedCode1/2 as TC260 SecurityData
that exiftool reads back from the file and that verify checks, producer and platform."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from labelers.errors import SigningError
from tests.support import KEYS, auth


def _photo() -> bytes:
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _post(client: TestClient, path: str, data: bytes, key: str = "gen-key") -> bytes | dict:
    resp = client.post(path, files={"file": ("f", data)}, headers=auth(key))
    assert resp.status_code == 200, resp.text
    return resp.json() if path == "/v1/verify" else resp.content


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_tc260_format_is_written_read_back_and_verified(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        api_keys=json.dumps(KEYS),
        record_scheme="sm2",
        record_format="tc260",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        labelled = _post(client, "/v1/label", _photo())
        propagated = _post(client, "/v1/propagate", labelled, "platform-key")
        report = _post(client, "/v1/verify", propagated)
    path = tmp_path / "out.png"
    path.write_bytes(propagated)
    out = subprocess.run(["exiftool", "-j", "-XMP-TC260:all", path], capture_output=True)
    [tags] = json.loads(out.stdout)
    record = json.loads(tags["Aigc"])
    rc1 = json.loads(record["ReservedCode1"])["SecurityData"]
    assert rc1["Type"] == "TC260PG"
    assert [e["Type"] for e in rc1["PubSD"]] == ["PubKey", "DS", "DS"]
    assert json.loads(record["ReservedCode2"])["SecurityData"]["Type"] == "TC260PG"
    for role in ("producer", "platform"):
        check = report["integrity"][role]
        assert check["status"] == "valid" and check["form"] == "tc260", check
        assert "content binding checked" in check["detail"]


def test_tc260_format_with_an_ed25519_key_is_refused_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), record_format="tc260")
    with pytest.raises(SigningError, match="SM2"), TestClient(create_app(settings)):
        pass
