"""A ComfyUI server for headless runs, and a small client for its HTTP/websocket API.

:class:`ComfyServer` starts ComfyUI (a checkout named by ``COMFYUI_PATH``) as a subprocess on
127.0.0.1 with this pack loaded *without touching the user's ComfyUI*: everything the server
writes goes to a temporary folder, and the pack comes in through the ``custom_nodes:`` entry of a
temporary extra-model-paths YAML (COMFYUI_NOTES §2.2, §7.3) holding a symlink to this
repository. In tiny mode the YAML also adds the tiny model folders and the test stand-in pack
(``tools/tiny_nodes``). The server is stopped by its PID, always.

:class:`ComfyClient` speaks ComfyUI's API (COMFYUI_NOTES §7.4): ``/object_info``, ``/models``,
``/upload/image``, ``/prompt`` (HTTP 400 → :class:`PromptRejected` with ``node_errors``),
progress over the websocket ``/ws`` (aiohttp when importable, else polling ``/history``),
``/history``, ``/view``, ``/interrupt``. Only the standard library is required.

Both are used by ``tools/cos_run.py`` and by the tier-2 tests.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_NODES = REPO_ROOT / "tools" / "tiny_nodes" / "cos_tiny_stand_ins"
# the models folders of the tiny stand-ins (tools.tiny.TINY_FOLDERS), added to the server in tiny mode
TINY_MODEL_FOLDERS = ("diffusion_models", "vae", "text_encoders", "checkpoints", "loras", "latent_upscale_models")
PACK_NODES = ("CoSSampler", "CoSCaptureX0", "CoSDecodeSteps", "CoSSaveStepVideos", "CoSSaveTrace", "CoSLoadTrace")
PACK_DIR_NAME = "comfyui-chain-of-steps"
LOG_PREFIX = "[cos]"


class ServerError(RuntimeError):
    """ComfyUI did not start, or the pack did not load in it."""


class PromptRejected(RuntimeError):
    """``POST /prompt`` answered HTTP 400: the prompt failed validation.

    Attributes:
        body: the server's JSON answer (``error`` and ``node_errors``).
    """

    def __init__(self, body: dict, prompt: dict | None = None):
        self.body = body
        super().__init__(format_node_errors(body, prompt))


class PromptFailed(RuntimeError):
    """The prompt ran and failed (``execution_error``) or was interrupted.

    Attributes:
        data: the ``execution_error`` / ``execution_interrupted`` event data (node_id, node_type,
            exception_message, traceback, ...).
        interrupted: True for ``execution_interrupted``.
    """

    def __init__(self, data: dict, interrupted: bool = False):
        self.data, self.interrupted = data, interrupted
        node = f"node {data.get('node_id')} '{data.get('node_type')}'" if data.get("node_id") else "the prompt"
        if interrupted:
            super().__init__(f"{node} was interrupted")
        else:
            kind, text = data.get("exception_type", "error"), data.get("exception_message", "").strip()
            super().__init__(f"{node} failed: {kind}: {text}")


def format_node_errors(body: dict, prompt: dict | None = None) -> str:
    """A readable text for a ``POST /prompt`` 400 answer."""
    error = body.get("error") or {}
    lines = [f"ComfyUI refused the prompt: {error.get('message', 'validation failed')}"
             + (f" ({error.get('details')})" if error.get("details") else "")]
    for node_id, info in (body.get("node_errors") or {}).items():
        title = ((prompt or {}).get(node_id) or {}).get("_meta", {}).get("title")
        lines.append(f"  node {node_id} '{info.get('class_type')}'" + (f" ({title})" if title else "") + ":")
        seen = set()
        for err in info.get("errors", []):
            details = str(err.get("details", ""))
            if err.get("type") == "custom_validation_failed" and " - " in details:
                # a validate_inputs(**kwargs) message comes once per input as "<input> - <message>"
                details = details.split(" - ", 1)[1]
            text = f"{err.get('message', '')}: {details}".strip(": ")
            if text not in seen:
                seen.add(text)
                lines.append(f"    - {text}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------

def comfy_python(comfy_path: str | os.PathLike | None) -> str:
    """ComfyUI's Python: ``COMFYUI_PYTHON``, else ``<COMFYUI_PATH>/.venv`` or ``/venv``, else this one."""
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    if comfy_path:
        for venv in (".venv", "venv"):
            for rel in ("bin/python", "Scripts/python.exe"):
                candidate = Path(comfy_path) / venv / rel
                if candidate.is_file():
                    return str(candidate)
    return sys.executable


def has_accelerator(python: str) -> bool:
    """Whether torch in ``python`` sees a GPU (CUDA/ROCm, Apple MPS or Intel XPU)."""
    code = ("import sys, torch\n"
            "ok = torch.cuda.is_available() or (getattr(torch.backends, 'mps', None) is not None and "
            "torch.backends.mps.is_available()) or (hasattr(torch, 'xpu') and torch.xpu.is_available())\n"
            "sys.exit(0 if ok else 3)\n")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)``, so a runner that is killed still runs its ``finally`` blocks and
    stops the ComfyUI it started (which lives in its own process session and would outlive it otherwise).
    Only from the main thread (where Python lets a handler be set); elsewhere it does nothing."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tiny_models(python: str, comfy_path: str | os.PathLike, models_dir: str | os.PathLike) -> Path:
    """Write the tiny stand-in checkpoints (``tools.tiny``) under ``models_dir``, in ComfyUI's Python.

    Files already there are kept, so a cache folder makes later runs start at once.
    """
    from tools.tiny import TINY_FOLDERS  # plain constants; importing tools.tiny needs torch only

    models_dir = Path(models_dir)
    wanted = [models_dir / folder / name for name, folder in TINY_FOLDERS.items()]
    if all(p.is_file() for p in wanted):
        return models_dir
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "from comfy.cli_args import args; args.cpu = True  # building toy weights needs no GPU\n"
            "from tools.tiny import write_tiny_models; write_tiny_models(sys.argv[3])\n")
    done = subprocess.run([python, "-c", code, str(Path(comfy_path).resolve()), str(REPO_ROOT), str(models_dir)],
                          cwd=str(REPO_ROOT), capture_output=True, text=True)
    if done.returncode != 0:
        raise ServerError(f"writing the tiny models failed:\n{done.stderr[-3000:]}")
    return models_dir


class ComfyServer:
    """A ComfyUI server subprocess with this pack loaded; use as a context manager.

    Args:
        comfy_path: the ComfyUI checkout (``COMFYUI_PATH``).
        python: its Python (default :func:`comfy_python`).
        cpu: pass ``--cpu``; None: only when torch sees no GPU in that Python.
        tiny_models: a folder with the :data:`TINY_MODEL_FOLDERS` to add (tiny mode); also
            loads the test stand-in pack.
        port: default a free one.
        timeout: seconds to wait for ``/object_info``.
        extra_args: more ComfyUI command-line arguments.
    """

    def __init__(self, comfy_path: str | os.PathLike, python: str | None = None, cpu: bool | None = None,
                 tiny_models: str | os.PathLike | None = None, port: int | None = None, timeout: float = 120.0,
                 extra_args: list[str] | None = None, log=print):
        self.comfy_path = Path(comfy_path).resolve()
        if not (self.comfy_path / "main.py").is_file():
            raise ServerError(f"COMFYUI_PATH={self.comfy_path} is not a ComfyUI checkout (no main.py)")
        self.python = python or comfy_python(self.comfy_path)
        self.cpu = cpu
        self.tiny_models = Path(tiny_models).resolve() if tiny_models else None
        self.port = port
        self.timeout = timeout
        self.extra_args = list(extra_args or [])
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.root: Path | None = None
        self.url = ""
        self.startup_seconds = None

    # -- layout -------------------------------------------------------------------------------
    def _prepare(self) -> list[str]:
        self.root = Path(tempfile.mkdtemp(prefix="cos_comfy_"))
        dirs = {name: self.root / name for name in ("custom_nodes", "output", "input", "temp", "user")}
        for d in dirs.values():
            d.mkdir()
        if not self._pack_already_installed():
            (dirs["custom_nodes"] / PACK_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
        if self.tiny_models is not None:
            (dirs["custom_nodes"] / TINY_NODES.name).symlink_to(TINY_NODES, target_is_directory=True)
        config = {"chain_of_steps_run": {"custom_nodes": str(dirs["custom_nodes"])}}
        if self.tiny_models is not None:
            config["chain_of_steps_tiny_models"] = {"base_path": str(self.tiny_models)} | {
                folder: folder for folder in TINY_MODEL_FOLDERS}
        yaml_path = self.root / "extra_model_paths.yaml"
        yaml_path.write_text(_to_yaml(config), encoding="utf-8")
        self.port = self.port or free_port()
        cpu = self.cpu if self.cpu is not None else not has_accelerator(self.python)
        args = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
                "--extra-model-paths-config", str(yaml_path),
                "--output-directory", str(dirs["output"]), "--input-directory", str(dirs["input"]),
                "--temp-directory", str(dirs["temp"]), "--user-directory", str(dirs["user"]),
                "--database-url", "sqlite:///:memory:", "--disable-api-nodes", "--preview-method", "latent2rgb"]
        if cpu:
            args.append("--cpu")
        return args + self.extra_args

    def _pack_already_installed(self) -> bool:
        """True when ComfyUI's own custom_nodes already holds this very repository (then don't load it twice)."""
        folder = self.comfy_path / "custom_nodes"
        try:
            return any(entry.resolve() == REPO_ROOT for entry in folder.iterdir())
        except OSError:
            return False

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def log_path(self) -> Path:
        return self.root / "comfyui.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def import_failures(self) -> list[str]:
        """Log lines of custom node packs that failed to import."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line.strip() for line in text.splitlines() if "IMPORT FAILED" in line]

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> "ComfyServer":
        args = self._prepare()
        started = time.monotonic()
        self.log(f"{LOG_PREFIX} starting ComfyUI ({self.comfy_path}) on port {self.port}"
                 + (" on the CPU" if "--cpu" in args else ""))
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(args, cwd=str(self.comfy_path), stdout=log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        client = ComfyClient(self.url)
        deadline = started + self.timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ServerError(f"ComfyUI exited with code {self.proc.returncode} while starting; "
                                  f"its log ends:\n{tail}")
            try:
                info = client.object_info()
                break
            except (OSError, urllib.error.URLError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise ServerError(f"ComfyUI did not answer /object_info within {self.timeout:.0f} s; "
                                      f"its log ends:\n{tail}")
                time.sleep(0.5)
        self.startup_seconds = time.monotonic() - started
        missing = [n for n in PACK_NODES if n not in info]
        if missing:
            failures = self.import_failures()
            tail = self.log_tail(60)
            self.stop()
            why = ("the pack failed to import (IMPORT FAILED):\n  " + "\n  ".join(failures)) if failures else \
                "the pack's nodes are missing"
            raise ServerError(f"ComfyUI started but {why}\nmissing nodes: {', '.join(missing)}\nlog ends:\n{tail}")
        if self.tiny_models is not None and "CoSTinyTextEncode" not in info:
            tail = self.log_tail(60)
            self.stop()
            raise ServerError(f"the tiny stand-in pack did not load; log ends:\n{tail}")
        self.object_info = info
        self.log(f"{LOG_PREFIX} ComfyUI is up at {self.url} after {self.startup_seconds:.1f} s")
        return self

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 10 s) and remove its folder."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_BREAK_EVENT)
                proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError, ValueError):
                proc.kill()
                proc.wait(timeout=10)
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _to_yaml(config: dict) -> str:
    """The tiny YAML subset extra_model_paths needs (two levels of string keys); paths are JSON-quoted."""
    lines = []
    for section, entries in config.items():
        lines.append(f"{section}:")
        lines += [f"    {key}: {json.dumps(str(value))}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------------------------

class ComfyClient:
    """ComfyUI's HTTP and websocket API (standard library; aiohttp for the websocket when present)."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self.last_prompt_id: str | None = None

    # -- plain HTTP ---------------------------------------------------------------------------
    def request(self, path: str, body=None, method: str | None = None, raw: bool = False,
                headers: dict | None = None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode("utf-8")
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            payload = resp.read()
        return payload if raw else (json.loads(payload) if payload else None)

    def object_info(self) -> dict:
        return self.request("/object_info")

    def models(self, folder: str) -> list[str]:
        """File names in one models folder (``GET /models/<folder>``); [] for an unknown folder."""
        try:
            return list(self.request(f"/models/{urllib.parse.quote(folder)}") or [])
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise

    def system_stats(self) -> dict:
        try:
            return self.request("/system_stats")
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return {}

    def upload_image(self, path: str | os.PathLike, name: str | None = None, subfolder: str = "") -> str:
        """Upload a picture to the server's input folder; returns the name LoadImage takes."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        name = name or path.name
        parts = []
        for field, value in (("type", "input"), ("subfolder", subfolder), ("overwrite", "true")):
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n"
                         f"{value}\r\n".encode())
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        answer = self.request("/upload/image", body=b"".join(parts), method="POST",
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def queue(self, prompt: dict, targets: list[str] | None = None, extra_data: dict | None = None) -> str:
        """``POST /prompt``; returns the prompt id. Raises :class:`PromptRejected` on HTTP 400 and on a
        prompt ComfyUI accepted with ``node_errors`` (some of its outputs would not run)."""
        body = {"prompt": prompt, "client_id": self.client_id}
        if targets:
            body["partial_execution_targets"] = list(targets)
        if extra_data:
            body["extra_data"] = extra_data
        try:
            answer = self.request("/prompt", body=body)
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                payload = json.loads(text)
            except json.JSONDecodeError:
                payload = {"error": {"message": f"HTTP {err.code}", "details": text.decode(errors="replace")[:2000]}}
            if err.code == 400:
                raise PromptRejected(payload, prompt) from None
            raise
        if answer.get("node_errors"):
            # a 200 with node_errors: ComfyUI queued the prompt without its invalid outputs; refuse it
            raise PromptRejected(answer, prompt)
        self.last_prompt_id = answer["prompt_id"]
        return self.last_prompt_id

    def history(self, prompt_id: str) -> dict | None:
        return (self.request(f"/history/{prompt_id}") or {}).get(prompt_id)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """``POST /interrupt`` (only that prompt, when it is the running one)."""
        self.request("/interrupt", body={"prompt_id": prompt_id} if prompt_id else {})

    def delete_queued(self, prompt_id: str) -> None:
        self.request("/queue", body={"delete": [prompt_id]})

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        return self.request(f"/view?{query}", raw=True)

    # -- running a prompt ---------------------------------------------------------------------
    def run(self, prompt: dict, on_event=None, progress=None, targets: list[str] | None = None,
            timeout: float | None = None) -> dict:
        """Queue ``prompt``, follow it to the end and return its ``/history`` entry.

        Args:
            on_event: ``fn(client, prompt_id, event_type, data)`` for every websocket event of
                this prompt (e.g. to interrupt it); with the polling fallback only synthetic
                ``"executing"`` / ``"execution_success"`` events come.
            progress: a :class:`Progress` (or None) fed with node/progress events.
            timeout: seconds before giving up (None: wait for ever).

        Raises:
            PromptRejected: validation failed (HTTP 400).
            PromptFailed: ``execution_error`` or ``execution_interrupted``.
        """
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            prompt_id = self.queue(prompt, targets)
            return self._poll(prompt_id, on_event, progress, timeout)
        return asyncio.run(self._run_ws(prompt, on_event, progress, targets, timeout))

    async def _run_ws(self, prompt, on_event, progress, targets, timeout):
        import aiohttp

        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + f"/ws?clientId={self.client_id}"
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(ws_url, max_msg_size=0, heartbeat=30) as ws:
                prompt_id = await loop.run_in_executor(None, lambda: self.queue(prompt, targets))
                deadline = None if timeout is None else time.monotonic() + timeout
                while True:
                    wait = None if deadline is None else max(0.1, deadline - time.monotonic())
                    try:
                        msg = await ws.receive(timeout=wait)
                    except asyncio.TimeoutError:
                        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s") from None
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        # the socket dropped: finish by polling
                        return await loop.run_in_executor(None, lambda: self._poll(prompt_id, on_event, progress,
                                                                                   timeout))
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue  # binary preview frames
                    event = json.loads(msg.data)
                    kind, data = event.get("type"), event.get("data") or {}
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    if kind == "status":
                        continue
                    if on_event is not None:
                        await loop.run_in_executor(None, on_event, self, prompt_id, kind, data)
                    if progress is not None:
                        progress.event(kind, data, prompt)
                    if kind == "execution_error":
                        raise PromptFailed(data)
                    if kind == "execution_interrupted":
                        raise PromptFailed(data, interrupted=True)
                    if kind == "execution_success" or (kind == "executing" and data.get("node") is None
                                                       and data.get("prompt_id") == prompt_id):
                        break
        return await loop.run_in_executor(None, lambda: self._final_history(prompt_id))

    def _final_history(self, prompt_id: str, wait: float = 30.0) -> dict:
        """The history entry once it is written (it lands just after the last event)."""
        deadline = time.monotonic() + wait
        while True:
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"no history for prompt {prompt_id}")
            time.sleep(0.1)

    def _poll(self, prompt_id, on_event, progress, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")
            if progress is not None:
                progress.tick()
            time.sleep(0.5)
        for kind, data in (entry.get("status") or {}).get("messages", []):
            if on_event is not None:
                on_event(self, prompt_id, kind, data)
            if kind == "execution_error":
                raise PromptFailed(data)
            if kind == "execution_interrupted":
                raise PromptFailed(data, interrupted=True)
        return entry


class Progress:
    """ONE progress bar for a running prompt: the node now running (id and title) and its
    progress value (sampler steps, ...), with the count of nodes done. tqdm when importable,
    else a single rewritten line."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.nodes_done = 0
        self.total_nodes = 0
        self.current = ""
        self.started = time.monotonic()
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=1, file=self.stream, dynamic_ncols=True, leave=True,
                                bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}]")
            except ImportError:
                self.bar = None

    def _title(self, node_id, prompt) -> str:
        entry = (prompt or {}).get(str(node_id)) or {}
        title = entry.get("_meta", {}).get("title") or entry.get("class_type") or "?"
        return f"#{node_id} {title}"

    def event(self, kind: str, data: dict, prompt: dict | None = None) -> None:
        if not self.enabled:
            return
        self.total_nodes = self.total_nodes or len(prompt or {})
        if kind == "execution_cached":
            self.nodes_done += len(data.get("nodes") or [])
            self._show(0, 1)
        elif kind == "executing" and data.get("node") is not None:
            if self.current:
                self.nodes_done += 1
            self.current = self._title(data["node"], prompt)
            self._show(0, 1)
        elif kind == "progress":
            self.current = self._title(data.get("node"), prompt) if data.get("node") else self.current
            self._show(int(data.get("value", 0)), int(data.get("max", 1) or 1))
        elif kind in ("execution_success", "execution_error", "execution_interrupted") or \
                (kind == "executing" and data.get("node") is None):
            if kind in ("execution_error", "execution_interrupted"):
                self.current = f"{self.current}: {'failed' if kind == 'execution_error' else 'interrupted'}"
            else:
                self.nodes_done, self.current = self.total_nodes, "done"
            self._show(1, 1)
            self.close()

    def tick(self) -> None:
        if self.enabled and self.bar is None:
            self._line(f"waiting for ComfyUI ... {time.monotonic() - self.started:.0f} s")

    def _show(self, value: int, maximum: int) -> None:
        desc = f"nodes {min(self.nodes_done, self.total_nodes)}/{self.total_nodes}  {self.current}"
        if self.bar is not None:
            self.bar.total = max(1, maximum)
            self.bar.n = min(value, maximum)
            self.bar.set_description_str(desc, refresh=False)
            self.bar.refresh()
        else:
            width = 24
            filled = int(width * value / max(1, maximum))
            self._line(f"{desc} [{'#' * filled}{'.' * (width - filled)}] {value}/{maximum}")

    def _line(self, text: str) -> None:
        self.stream.write("\r" + text[:150].ljust(150))
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.enabled = False
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


__all__ = ["ComfyServer", "ComfyClient", "Progress", "PromptRejected", "PromptFailed", "ServerError",
           "comfy_python", "write_tiny_models", "format_node_errors", "REPO_ROOT"]
