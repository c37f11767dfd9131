"""Tier 0: ``tools/download.py`` against a fake Hugging Face Hub on 127.0.0.1 (no network, no ComfyUI).

The fake hub serves the few endpoints huggingface_hub uses here, with the real headers:
``POST /api/models/{repo}/paths-info/{revision}`` (sizes, LFS sha256), ``HEAD/GET
/{repo}/resolve/{revision}/{path}`` (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``,
``Content-Length``/``X-Linked-Size``; LFS files redirect to ``/cdn/{sha256}`` as the real hub
redirects to its CDN), and ``Range`` requests on the CDN. It can cut a transfer short to play a
broken connection, and it records every request so the tests can see what was resumed.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest

pytest.importorskip("huggingface_hub")

from tools import download  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def blob(seed: int, size: int) -> bytes:
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:size])


class FakeHub:
    """A tiny Hub: ``repos[repo_id][path] = bytes``; files of 1 kB or more are 'LFS' (CDN redirect)."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_after: dict[str, int] = {}  # sha256 → bytes to send once before dropping the connection
        self.cut_always: set[str] = set()  # keep cutting every transfer of these
        self.gated: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.handle(self, head=True)

            def do_GET(self):
                hub.handle(self, head=False)

            def do_POST(self):
                hub.handle_post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def is_lfs(data: bytes) -> bool:
        return len(data) >= 1024

    def by_sha(self, sha: str) -> bytes | None:
        for files in self.repos.values():
            for data in files.values():
                if hashlib.sha256(data).hexdigest() == sha:
                    return data
        return None

    def _reply(self, req, status: int, headers: dict, body: bytes = b"", head: bool = False):
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, str(value))
        if "Content-Length" not in headers:
            req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not head and body:
            req.wfile.write(body)

    def _error(self, req, status: int, code: str, message: str, head: bool = False):
        body = json.dumps({"error": message}).encode()
        self._reply(req, status, {"X-Error-Code": code, "X-Error-Message": message, "X-Repo-Commit": COMMIT,
                                  "Content-Type": "application/json"}, body, head)

    def handle(self, req, head: bool):
        path = unquote(req.path.split("?", 1)[0])
        self.requests.append(("HEAD" if head else "GET", path, req.headers.get("Range")))
        if path.startswith("/cdn/"):
            return self.serve_cdn(req, path[5:], head)
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(req, 404, "EntryNotFound", "no such route", head)
        repo_id, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
        if repo_id in self.gated:
            return self._error(req, 401, "GatedRepo", "Access to this model is restricted", head)
        if repo_id not in self.repos:
            return self._error(req, 404, "RepoNotFound", "Repository not found", head)
        data = self.repos[repo_id].get(filename)
        if data is None:
            return self._error(req, 404, "EntryNotFound", "Entry not found", head)
        sha = hashlib.sha256(data).hexdigest()
        if self.is_lfs(data):
            return self._reply(req, 302, {"Location": f"{self.url}/cdn/{sha}", "X-Repo-Commit": COMMIT,
                                          "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": len(data),
                                          "ETag": '"pointer-etag"', "Content-Length": 0}, head=True)
        git_sha = hashlib.sha1(data).hexdigest()
        return self._reply(req, 200, {"X-Repo-Commit": COMMIT, "ETag": f'"{git_sha}"'}, data, head)

    def serve_cdn(self, req, sha: str, head: bool):
        data = self.by_sha(sha)
        if data is None:
            return self._error(req, 404, "EntryNotFound", "no blob", head)
        start, status, headers = 0, 200, {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
        spec = req.headers.get("Range")
        if spec:
            start = int(spec.split("=", 1)[1].split("-", 1)[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = len(body)
        cut = None if head else self.cut_after.get(sha)
        if cut is not None and sha not in self.cut_always:
            del self.cut_after[sha]
        if cut is not None:  # play a broken connection: promise everything, send a part
            req.send_response(status)
            for key, value in headers.items():
                req.send_header(key, str(value))
            req.end_headers()
            req.wfile.write(body[:cut])
            req.wfile.flush()
            req.close_connection = True
            return None
        return self._reply(req, status, headers, body, head)

    def handle_post(self, req):
        length = int(req.headers.get("Content-Length") or 0)
        form = parse_qs(req.rfile.read(length).decode())
        path = unquote(req.path.split("?", 1)[0])
        self.requests.append(("POST", path, None))
        parts = path.lstrip("/").split("/")  # api/models/{org}/{name}/paths-info/{revision}
        if len(parts) < 6 or parts[:2] != ["api", "models"] or parts[4] != "paths-info":
            return self._error(req, 404, "EntryNotFound", "no such route")
        repo_id = f"{parts[2]}/{parts[3]}"
        if repo_id in self.gated:
            return self._error(req, 401, "GatedRepo", "Access to this model is restricted")
        if repo_id not in self.repos:
            return self._error(req, 404, "RepoNotFound", "Repository not found")
        out = []
        for wanted in form.get("paths", []):
            data = self.repos[repo_id].get(wanted)
            if data is None:
                continue
            entry = {"type": "file", "path": wanted, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            if self.is_lfs(data):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(entry)
        return self._reply(req, 200, {"Content-Type": "application/json"}, json.dumps(out).encode())


HIGH = blob(1, 300_000)
LOW = blob(2, 200_000)
VAE = blob(3, 50_000)
NOTE = b"tiny text file\n"


@pytest.fixture
def hub():
    fake = FakeHub({
        "Org/Video_Repackaged": {"split_files/diffusion_models/high.safetensors": HIGH,
                                 "split_files/diffusion_models/low.safetensors": LOW},
        "Org/Vae_Repackaged": {"split_files/vae/vae.safetensors": VAE, "notes/readme.txt": NOTE},
    })
    yield fake
    fake.close()


def hf(repo: str, path: str) -> str:
    return f"https://huggingface.co/{repo}/resolve/main/{path}"


def write_workflow(folder: Path, name: str, models: list[tuple[str, str, str, str]]) -> Path:
    """A UI-format workflow with one loader per (node type, file name, url, folder)."""
    nodes = [{"id": i + 1, "type": kind, "widgets_values": [fname, "default"],
              "properties": {"models": [{"name": fname, "url": url, "directory": folder}]}}
             for i, (kind, fname, url, folder) in enumerate(models)]
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"nodes": nodes, "links": []}), encoding="utf-8")
    return path


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Workflows folder with one Wan-like workflow; a ComfyUI folder with an empty models/."""
    flows = tmp_path / "workflows"
    flows.mkdir()
    write_workflow(flows, "wan_like", [
        ("UNETLoader", "high.safetensors", hf("Org/Video_Repackaged", "split_files/diffusion_models/high.safetensors"),
         "diffusion_models"),
        ("UNETLoader", "low.safetensors", hf("Org/Video_Repackaged", "split_files/diffusion_models/low.safetensors"),
         "diffusion_models"),
        ("VAELoader", "vae.safetensors", hf("Org/Vae_Repackaged", "split_files/vae/vae.safetensors"), "vae"),
    ])
    (flows / "index.json").write_text("[]")  # the template browser's index is not a workflow
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    monkeypatch.setattr(download, "WORKFLOWS_DIR", flows)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return flows, comfy


def run(argv, lines=None) -> int:
    out = lines if lines is not None else []
    return download.main(argv, log=lambda *a: out.append(" ".join(str(x) for x in a)))


def models_of(comfy: Path) -> Path:
    return comfy / "models"


# ---------------------------------------------------------------------------------------------

def test_parse_hf_url():
    vae = "split_files/vae/wan_2.1_vae.safetensors"
    assert download.parse_hf_url(hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged", vae)) \
        == ("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "main", vae)
    assert download.parse_hf_url("https://huggingface.co/a/b/resolve/refs%2Fpr%2F3/x%20y.bin?download=true") \
        == ("a/b", "refs/pr/3", "x y.bin")
    assert download.parse_hf_url("https://example.com/file.safetensors") is None


def test_entries_cannot_escape_the_models_folder():
    with pytest.raises(ValueError, match="plain relative"):
        download.make_need({"name": "../../evil.safetensors", "url": "u", "directory": "vae"}, "w")
    with pytest.raises(ValueError, match="plain folder"):
        download.make_need({"name": "ok.safetensors", "url": "u", "directory": "../vae"}, "w")
    assert download.make_need({"name": "VBVR/x.safetensors", "url": "u", "directory": "loras"}, "w").name \
        == "VBVR/x.safetensors"


def test_shipped_workflows_name_a_source_for_every_model_file():
    """Every model file a shipped workflow's nodes load has a properties.models entry (url + folder); only
    the CoS-Toy workflows, whose model ships inside the pack, need no download."""
    flows = download.shipped_workflows(download.REPO_ROOT / "workflows")
    assert flows, "no workflows shipped"
    for name, path in flows.items():
        needs, warnings = download.workflow_needs(path)
        assert not warnings, warnings
        embedded = "CoSToyModel" in {node["type"] for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]}
        assert bool(needs) != embedded, f"{name}: embedded toy model {embedded}, model files {needs}"
        for need in needs:
            assert need.repo_id, f"{name}: {need.name} has no Hugging Face URL ({need.url})"


def test_shipped_wan_workflow_plan():
    needs, _ = download.workflow_needs(download.REPO_ROOT / "workflows" / "wan22_i2v_chain_of_steps.json")
    got = {(n.directory, n.name, n.repo_id) for n in download.merge(needs)}
    wan22, wan21 = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
    assert got == {
        ("diffusion_models", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", wan22),
        ("diffusion_models", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", wan22),
        ("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors", wan21),
        ("vae", "wan_2.1_vae.safetensors", wan21),
    }


def test_optional_sets_resolve_by_prefix():
    manifest = download.load_manifest()
    names = [n.name for n in download.optional_needs(["vbvr"], manifest)]
    assert len(names) == 4 and len(set(names)) == 4
    assert [n.directory for n in download.optional_needs(["vbvr-wan2.2"], manifest)] == ["loras", "loras"]
    with pytest.raises(ValueError, match="no set"):
        download.optional_needs(["nope"], manifest)


def test_dry_run_shows_sizes_and_downloads_nothing(hub, setup):
    flows, comfy = setup
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url, "--dry-run"], lines) == 0
    text = "\n".join(lines)
    assert "300.0 kB" in text and "200.0 kB" in text and "50.0 kB" in text
    assert "To download: 3 file(s), 550.0 kB." in text
    assert not any(models_of(comfy).rglob("*.safetensors*"))
    assert all(method in ("POST",) for method, _, _ in hub.requests)  # sizes only: paths-info


def test_files_land_in_their_folders(hub, setup):
    flows, comfy = setup
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 0, lines
    models = models_of(comfy)
    assert (models / "diffusion_models" / "high.safetensors").read_bytes() == HIGH
    assert (models / "diffusion_models" / "low.safetensors").read_bytes() == LOW
    assert (models / "vae" / "vae.safetensors").read_bytes() == VAE
    assert not list(models.rglob("*.part*")), "no partial files left behind"
    # a second run finds everything in place and downloads nothing
    before = len([r for r in hub.requests if r[0] == "GET"])
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 0
    assert "All 3 files are in place." in lines[-1]
    assert len([r for r in hub.requests if r[0] == "GET"]) == before


def test_one_workflow_and_optional_set(hub, setup, tmp_path, monkeypatch):
    flows, comfy = setup
    write_workflow(flows, "other", [("VAELoader", "vae.safetensors", hf("Org/Vae_Repackaged",
                                                                       "split_files/vae/vae.safetensors"), "vae")])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"optional": {"extra-notes": {"description": "d", "files": [
        {"name": "sub/readme.txt", "url": hf("Org/Vae_Repackaged", "notes/readme.txt"), "directory": "loras"}]}}}))
    monkeypatch.setattr(download, "MANIFEST", manifest)
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url, "--workflow", "other", "--optional", "extra"]) == 0
    models = models_of(comfy)
    assert (models / "vae" / "vae.safetensors").read_bytes() == VAE
    assert (models / "loras" / "sub" / "readme.txt").read_bytes() == NOTE  # non-LFS file, no redirect
    assert not (models / "diffusion_models").exists()
    assert run(["--comfyui", str(comfy), "--workflow", "nope"]) == 2


def test_partial_download_resumes_where_it_stopped(hub, setup):
    """A .part left by a stopped run (same file on the hub) continues with a Range request."""
    flows, comfy = setup
    target = models_of(comfy) / "diffusion_models" / "high.safetensors"
    target.parent.mkdir(parents=True)
    part, meta = download.part_paths(target)
    part.write_bytes(HIGH[:123_456])
    sha = hashlib.sha256(HIGH).hexdigest()
    meta.write_text(json.dumps({"url": hf("Org/Video_Repackaged", "split_files/diffusion_models/high.safetensors"),
                                "etag": sha, "size": len(HIGH)}))
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url, "--workflow", "wan_like"], lines) == 0, lines
    assert target.read_bytes() == HIGH
    assert ("GET", f"/cdn/{sha}", "bytes=123456-") in hub.requests
    assert any("partial: 123.5 kB (resumes)" in line for line in lines)
    assert not part.exists() and not meta.exists()


def test_stale_partial_from_another_version_restarts(hub, setup):
    flows, comfy = setup
    target = models_of(comfy) / "diffusion_models" / "low.safetensors"
    target.parent.mkdir(parents=True)
    part, meta = download.part_paths(target)
    part.write_bytes(b"x" * 5000)
    meta.write_text(json.dumps({"url": "old", "etag": "old", "size": 5000}))
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url]) == 0
    assert target.read_bytes() == LOW
    sha = hashlib.sha256(LOW).hexdigest()
    assert ("GET", f"/cdn/{sha}", None) in hub.requests  # from the start, no Range


def test_broken_connection_is_retried_in_the_same_run(hub, setup):
    """The server drops the connection after 100 kB; huggingface_hub's http_get tries again (from the last
    whole chunk it wrote, here the start: its chunks are 10 MB) and the file comes out right."""
    flows, comfy = setup
    sha = hashlib.sha256(HIGH).hexdigest()
    hub.cut_after[sha] = 100_000
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 0, lines
    assert (models_of(comfy) / "diffusion_models" / "high.safetensors").read_bytes() == HIGH
    assert len([r for r in hub.requests if r[:2] == ("GET", f"/cdn/{sha}")]) == 2


def test_failed_download_keeps_its_part_and_the_next_run_finishes(hub, setup, monkeypatch):
    flows, comfy = setup
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)  # http_get waits 1 s between its retries
    sha = hashlib.sha256(LOW).hexdigest()
    hub.cut_after[sha] = 50_000
    hub.cut_always.add(sha)
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 2
    target = models_of(comfy) / "diffusion_models" / "low.safetensors"
    part, meta = download.part_paths(target)
    assert not target.exists() and part.exists() and meta.exists()
    assert any("run again to resume" in line for line in lines)
    assert (models_of(comfy) / "vae" / "vae.safetensors").read_bytes() == VAE  # the other files came
    hub.cut_always.clear()
    hub.cut_after.clear()
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url]) == 0
    assert target.read_bytes() == LOW and not part.exists()


def test_corrupt_download_is_detected_and_redone(hub, setup, monkeypatch):
    """A .part with the right size but wrong bytes fails the sha256 check and is downloaded again."""
    flows, comfy = setup
    target = models_of(comfy) / "vae" / "vae.safetensors"
    target.parent.mkdir(parents=True)
    part, meta = download.part_paths(target)
    sha = hashlib.sha256(VAE).hexdigest()
    part.write_bytes(b"\0" * len(VAE))  # complete length, wrong content
    meta.write_text(json.dumps({"url": hf("Org/Vae_Repackaged", "split_files/vae/vae.safetensors"),
                                "etag": sha, "size": len(VAE)}))
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 0, lines
    assert target.read_bytes() == VAE
    assert any("sha256" in line and "again" in line for line in lines)


def test_existing_file_of_another_size_is_left_alone_without_force(hub, setup):
    flows, comfy = setup
    models = models_of(comfy)
    odd = models / "vae" / "vae.safetensors"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"mine")
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 1
    assert odd.read_bytes() == b"mine"
    assert any("left alone" in line for line in lines)
    assert (models / "diffusion_models" / "high.safetensors").read_bytes() == HIGH  # the others still came
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url, "--force"]) == 0
    assert odd.read_bytes() == VAE


def test_file_in_legacy_folder_counts_as_present(hub, setup):
    flows, comfy = setup
    legacy = models_of(comfy) / "unet" / "high.safetensors"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(HIGH)
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 0
    assert any("present (in unet/)" in line for line in lines)
    assert not (models_of(comfy) / "diffusion_models" / "high.safetensors").exists()


def manual_message_ok(text: str, comfy: Path) -> None:
    for name, url in [("high.safetensors", hf("Org/Video_Repackaged", "split_files/diffusion_models/high.safetensors")),
                      ("vae.safetensors", hf("Org/Vae_Repackaged", "split_files/vae/vae.safetensors"))]:
        assert name in text and url in text
    assert f"{models_of(comfy) / 'diffusion_models'}{os.sep}" in text
    assert f"{models_of(comfy) / 'vae'}{os.sep}" in text


def test_offline_mode_gives_the_manual_instructions(setup, monkeypatch):
    flows, comfy = setup
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines = []
    assert run(["--comfyui", str(comfy)], lines) == 2
    text = "\n".join(lines)
    manual_message_ok(text, comfy)
    assert "offline mode" in text


def test_offline_with_everything_present_is_fine(setup, monkeypatch):
    flows, comfy = setup
    models = models_of(comfy)
    for folder, name, data in [("diffusion_models", "high.safetensors", HIGH),
                               ("diffusion_models", "low.safetensors", LOW), ("vae", "vae.safetensors", VAE)]:
        (models / folder).mkdir(exist_ok=True)
        (models / folder / name).write_bytes(data)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines = []
    assert run(["--comfyui", str(comfy)], lines) == 0
    assert "in place" in lines[-1]


def test_unreachable_hub_gives_the_manual_instructions(setup):
    flows, comfy = setup
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", f"http://127.0.0.1:{port}"], lines) == 2
    text = "\n".join(lines)
    manual_message_ok(text, comfy)
    assert "cannot reach the hub" in text


def test_gated_repo_names_the_login(hub, setup):
    flows, comfy = setup
    hub.gated.add("Org/Vae_Repackaged")
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 2
    text = "\n".join(lines)
    assert "hf auth login" in text and "vae.safetensors" in text
    assert (models_of(comfy) / "diffusion_models" / "high.safetensors").read_bytes() == HIGH  # the rest came


def test_missing_file_on_the_hub_is_reported(hub, setup):
    flows, comfy = setup
    del hub.repos["Org/Video_Repackaged"]["split_files/diffusion_models/low.safetensors"]
    lines = []
    assert run(["--comfyui", str(comfy), "--hf-endpoint", hub.url], lines) == 2
    assert any("not found in Org/Video_Repackaged" in line for line in lines)


def test_no_comfyui_is_a_clear_error(setup, monkeypatch):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    lines = []
    assert run(["--comfyui", ""], lines) == 2
    assert "--comfyui PATH" in lines[0]


def test_command_line_entry_point(hub, setup, monkeypatch):
    """``python -m tools.download`` runs as a module from the repository root."""
    import subprocess
    import sys

    flows, comfy = setup
    done = subprocess.run([sys.executable, "-m", "tools.download", "--list"], cwd=download.REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wan22_i2v_chain_of_steps" in done.stdout and "vbvr-wan2.2" in done.stdout
