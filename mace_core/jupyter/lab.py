"""JupyterLab on the project, opening the jupytext notebooks (``notebooks/*.py``) as notebooks.

* :func:`lab_settings` makes JupyterLab (of this environment) open ``.py`` files with jupytext's
  notebook view by default (the ``defaultViewers`` setting of the document manager, written as an
  application-level override, so the user's own settings stay theirs), and turns off JupyterLab's
  news pop-up ("Would you like to receive official Jupyter news?") and its update check.
* :func:`lab_command` is the command line that ``make lab`` / ``mace lab`` runs.
* :class:`LabServer` runs one on localhost for `make lab-check` and the tests.
The kernel the notebooks name is :mod:`mace_core.jupyter.kernel`'s.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_write_text

_VIEWER_PLUGIN = "@jupyterlab/docmanager-extension:plugin"
_JUPYTEXT_VIEWER = "Jupytext Notebook"   # the widget factory jupytext's JupyterLab extension registers
_NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"
_NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}   # "false": Never (the schema's string values)


def lab_settings(prefix: str | Path = sys.prefix) -> Path:
    """Write the application-level JupyterLab override that opens ``.py`` files as notebooks, with no
    news pop-up and no update check (both would fetch from the internet; a user's own setting wins)."""
    path = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError:
            raise MaceError(f"{path} is not valid JSON", "fix or delete it, then run again") from None
    before = json.dumps(data, sort_keys=True)
    data.setdefault(_VIEWER_PLUGIN, {}).setdefault("defaultViewers", {})["python"] = _JUPYTEXT_VIEWER
    data.setdefault(_NOTIFICATION_PLUGIN, {}).update(_NO_NEWS)
    if json.dumps(data, sort_keys=True) != before:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def lab_command(root: Path, extra: list[str] = ()) -> list[str]:
    """``jupyter lab`` on the project folder (as root too: containers on a GPU host often run as root)."""
    import os

    root_ok = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *root_ok, *extra]


class LabServer:
    """A JupyterLab server of this environment on localhost (for `make lab-check` and the tests):
    ``with LabServer(root, env) as server: server.get("/api/contents/...")``."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, timeout: float = 90):
        import secrets
        import socket

        self.root, self.timeout = Path(root), timeout
        self.token = secrets.token_hex(16)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {**__import__("os").environ, **(env or {})}
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LabServer":
        import subprocess
        import tempfile
        import time
        import urllib.request

        self.log = tempfile.TemporaryFile(mode="w+")
        cmd = lab_command(self.root, ["--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
                                      f"--IdentityProvider.token={self.token}", "--ServerApp.port_retries=0"])
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + self.timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.log.seek(0)
                    raise MaceError(f"JupyterLab did not start: {self.log.read()[-800:]}",
                                    "pip install -e . (jupyterlab is a dependency)")
                time.sleep(0.3)

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        import urllib.request

        sep = "&" if "?" in path else "?"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}{sep}token={self.token}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def execute(self, kernel_id: str, code: str, timeout: float = 600) -> list[dict]:
        """Run ``code`` in a kernel the server started, over its websocket; the cell's outputs."""
        import uuid

        import websocket

        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?token={self.token}", timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                           "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            outputs, done_shell, done_iopub = [], False, False
            while not (done_shell and done_iopub):
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if msg.get("channel") == "shell" and kind == "execute_reply":
                    done_shell = True
                elif kind == "status" and msg["content"].get("execution_state") == "idle":
                    done_iopub = True
                elif kind in ("stream", "execute_result", "display_data", "error"):
                    outputs.append({"type": kind, **msg["content"]})
            return outputs
        finally:
            ws.close()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:  # noqa: BLE001 - a server that ignores SIGTERM
                self.proc.kill()
        self.log.close()
