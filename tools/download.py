"""Fetch the model files the shipped workflows need into ComfyUI's model folders.

Usage (from the repository root, in any Python with huggingface_hub)::

    python -m tools.download [--workflow NAME|all] [--optional SET] [--comfyui PATH | --models-dir DIR]
        [--dry-run] [--force] [--no-verify] [--hf-endpoint URL]

What it fetches is read from the workflows themselves, not from a list kept here: every entry
of a node's ``properties.models`` (``name``, ``url``, ``directory``, the convention ComfyUI's
own templates and its frontend use) in ``workflows/*.json``. ``--optional SET`` adds files
from ``tools/download_files.json`` that no shipped workflow loads (the paper's VBVR LoRAs).

How it fetches (huggingface_hub):

1. **Sizes first.** ``HfApi.get_paths_info`` gives each file's size (and its sha256 when it
   is stored with LFS/Xet); a table shows file, size, folder and status before anything is
   downloaded, and the free disk space is checked.
2. **Resumable.** A file is downloaded to ``<folder>/<name>.part`` beside its final place
   with huggingface_hub's ``http_get`` (progress bar, retries with HTTP ``Range`` inside one
   run). A ``.part`` left by a stopped run is continued from where it stopped when the file on
   the hub is still the same one (same etag and size, recorded in ``<name>.part.json``);
   otherwise it starts again. (``hf_hub_download`` itself does not continue a download across
   runs in huggingface_hub 1.x: it deletes its temporary file on any failure.)
3. **Checked, then placed atomically.** The size, and the sha256 when the hub gives one
   (``--no-verify`` skips the hash), are checked before ``os.replace`` moves the file into
   place, so ComfyUI never sees a partial file (its loaders ignore ``.part``).
4. **Never overwritten by surprise.** A file already in place with the hub's size is kept; one
   of another size is reported and left alone unless ``--force``.

Offline (``HF_HUB_OFFLINE=1``), an unreachable hub, a gated or missing file: the command names
each file still missing, its URL and the folder to put it in by hand, and exits with code 2.

Exit codes: 0 every file in place (or a dry run that could see the hub); 1 a local problem
(a file of another size left alone, disk full, a download that failed its check twice);
2 bad arguments, no ComfyUI folder, or files that could not be fetched from the hub.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = REPO_ROOT / "workflows"
MANIFEST = Path(__file__).resolve().parent / "download_files.json"
MODEL_SUFFIXES = (".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pth", ".bin")
# ComfyUI reads these legacy folders too (folder_paths): a file there counts as present.
FOLDER_ALIASES = {"diffusion_models": ("unet",), "text_encoders": ("clip",)}
HF_URL = re.compile(r"^https?://[^/]+/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>[^?#]+)")
SAFE_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
CHUNK = 16 << 20


class DownloadError(Exception):
    """One file could not be fetched; ``hub`` is True when the hub (not this machine) is the cause."""

    def __init__(self, message: str, hub: bool = True):
        super().__init__(message)
        self.hub = hub


@dataclass
class Need:
    """One model file a workflow (or an optional set) needs in a ComfyUI models folder."""

    name: str  # as the loader names it, relative to the folder (may hold a subfolder)
    directory: str  # ComfyUI models folder: diffusion_models, text_encoders, vae, loras, ...
    url: str
    sources: list[str] = field(default_factory=list)  # workflows / optional sets that need it
    repo_id: str | None = None
    revision: str = "main"
    path: str | None = None  # file path inside the HF repo
    size: int | None = None  # from the hub
    sha256: str | None = None  # from the hub (LFS/Xet files)
    status: str = "?"  # present / differs / missing / partial
    local: Path | None = None  # where it is or will be
    local_size: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.directory, self.name


# ---------------------------------------------------------------------------------------------
# what is needed
# ---------------------------------------------------------------------------------------------

def parse_hf_url(url: str) -> tuple[str, str, str] | None:
    """``(repo_id, revision, path)`` of a ``…/{repo}/resolve/{revision}/{path}`` URL, else None."""
    match = HF_URL.match(url or "")
    if not match:
        return None
    return match.group("repo"), unquote(match.group("revision")), unquote(match.group("path"))


def check_entry(name: str, directory: str, where: str) -> None:
    """Refuse names that would write outside the models folder (workflow files are input data)."""
    parts = Path(name.replace("\\", "/")).parts
    if not name or Path(name).is_absolute() or ".." in parts or name.startswith(("/", "\\")):
        raise ValueError(f"{where}: model name '{name}' is not a plain relative file name")
    if not SAFE_FOLDER.match(directory or ""):
        raise ValueError(f"{where}: model folder '{directory}' is not a plain folder name")


def make_need(entry: dict, source: str) -> Need:
    name, directory, url = entry.get("name", ""), entry.get("directory", ""), entry.get("url", "")
    check_entry(name, directory, source)
    need = Need(name=name, directory=directory, url=url, sources=[source])
    parsed = parse_hf_url(url)
    if parsed:
        need.repo_id, need.revision, need.path = parsed
    return need


def _all_nodes(workflow: dict):
    yield from workflow.get("nodes") or []
    for sub in (workflow.get("definitions") or {}).get("subgraphs") or []:
        yield from sub.get("nodes") or []


def workflow_needs(path: Path) -> tuple[list[Need], list[str]]:
    """The files a UI-format workflow names in ``properties.models``, and warnings for model files
    its nodes load without saying where to get them."""
    workflow = json.loads(Path(path).read_text(encoding="utf-8"))
    source = Path(path).stem
    needs, named, warnings = [], set(), []
    for node in _all_nodes(workflow):
        for entry in (node.get("properties") or {}).get("models") or []:
            needs.append(make_need(entry, source))
            named.add(entry.get("name"))
    for node in _all_nodes(workflow):
        values = node.get("widgets_values")
        values = values.values() if isinstance(values, dict) else values or []
        for value in values:
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES) and value not in named:
                warnings.append(f"{source}: node {node.get('id')} {node.get('type')} loads '{value}' but the "
                                "workflow gives no download URL for it (properties.models)")
    return needs, warnings


def is_workflow(path: Path) -> bool:
    """A UI-format workflow (``nodes`` list), not e.g. the template browser's ``index.json``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def shipped_workflows(folder: Path | None = None) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder or WORKFLOWS_DIR).glob("*.json")) if is_workflow(p)}


def load_manifest(path: Path | None = None) -> dict:
    return json.loads(Path(path or MANIFEST).read_text(encoding="utf-8"))


def optional_needs(wanted: list[str], manifest: dict) -> list[Need]:
    """Files of the optional sets named (or prefixed) by ``wanted``; raises ValueError for an unknown one."""
    sets = manifest.get("optional") or {}
    needs = []
    for want in wanted:
        chosen = [name for name in sets if want == "all" or name == want or name.startswith(want + "-")]
        if not chosen:
            raise ValueError(f"--optional: no set '{want}'; known: {', '.join(sets) or 'none'}")
        for name in chosen:
            needs += [make_need(entry, f"optional:{name}") for entry in sets[name]["files"]]
    return needs


def merge(needs: list[Need]) -> list[Need]:
    """One entry per (folder, name); the same name from two different URLs is an error."""
    merged: dict[tuple[str, str], Need] = {}
    for need in needs:
        have = merged.get(need.key)
        if have is None:
            merged[need.key] = need
        elif have.url != need.url:
            raise ValueError(f"{need.directory}/{need.name}: {have.sources[0]} and {need.sources[0]} give different "
                             f"URLs ({have.url} vs {need.url})")
        else:
            have.sources += [s for s in need.sources if s not in have.sources]
    return list(merged.values())


# ---------------------------------------------------------------------------------------------
# what is here
# ---------------------------------------------------------------------------------------------

def find_models_root(comfyui: str | None, models_dir: str | None) -> Path:
    if models_dir:
        return Path(models_dir).expanduser().resolve()
    if not comfyui:
        raise ValueError("say where ComfyUI is: --comfyui PATH (or COMFYUI_PATH), or --models-dir DIR")
    root = Path(comfyui).expanduser().resolve()
    if not (root / "models").is_dir():
        raise ValueError(f"--comfyui: {root} has no models/ folder; is it a ComfyUI checkout?")
    return root / "models"


def part_paths(target: Path) -> tuple[Path, Path]:
    return target.with_name(target.name + ".part"), target.with_name(target.name + ".part.json")


def local_status(need: Need, models: Path) -> None:
    """Fill ``local``/``local_size``/``status`` from the disk (sizes are compared with the hub later)."""
    target = models / need.directory / need.name
    for folder in (need.directory, *FOLDER_ALIASES.get(need.directory, ())):
        candidate = models / folder / need.name
        if candidate.is_file():
            need.local, need.local_size, need.status = candidate, candidate.stat().st_size, "present"
            return
    need.local, need.local_size = target, None
    part, _ = part_paths(target)
    need.status = "partial" if part.is_file() else "missing"


def compare_sizes(need: Need) -> None:
    if need.status == "present" and need.size is not None and need.local_size != need.size:
        need.status = "differs"


# ---------------------------------------------------------------------------------------------
# the hub
# ---------------------------------------------------------------------------------------------

def offline_mode() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


NETWORK_ERRORS = {"ConnectError", "ConnectionError", "TimeoutException", "Timeout", "NetworkError", "TransportError",
                  "RemoteProtocolError", "ProxyError", "ReadTimeout", "ConnectTimeout", "ReadError",
                  "ChunkedEncodingError", "ProtocolError", "IncompleteRead"}
RETRIES = 2  # extra tries of a byte download cut by the network, each resuming where the last stopped


def _error_names(err: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(err).__mro__}


def is_transient(err: BaseException) -> bool:
    """A network fault worth another try (not offline mode, not an HTTP refusal)."""
    names = _error_names(err)
    return bool(names & NETWORK_ERRORS) and "OfflineModeIsEnabled" not in names and "HfHubHTTPError" not in names


def describe_error(err: BaseException) -> tuple[str, bool]:
    """A short reason for a failed hub call, and whether the hub (not this machine) is the cause."""
    from huggingface_hub.utils import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError,
                                       RevisionNotFoundError)

    if isinstance(err, GatedRepoError):
        return ("the repository is gated: accept its license on its Hugging Face page and log in "
                "(`hf auth login`, or set HF_TOKEN)"), True
    if isinstance(err, RepositoryNotFoundError):
        return "repository not found (or private: log in with `hf auth login` / HF_TOKEN)", True
    if isinstance(err, RevisionNotFoundError):
        return "revision not found on the hub", True
    if isinstance(err, EntryNotFoundError):
        return "file not found in the repository", True
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            return f"HTTP {status}: access denied (log in with `hf auth login` or set HF_TOKEN)", True
        return f"HTTP {status}: {str(err).splitlines()[0]}", True
    names = _error_names(err)
    if "OfflineModeIsEnabled" in names:
        return "offline mode (HF_HUB_OFFLINE) is on", True
    if names & NETWORK_ERRORS:
        return f"cannot reach the hub ({type(err).__name__}: {err})", True
    if isinstance(err, OSError) and err.errno is not None:
        return f"{type(err).__name__}: {err}", False
    return f"{type(err).__name__}: {err}", True


def fetch_sizes(needs: list[Need], endpoint: str, token=None) -> dict[tuple[str, str], str]:
    """Sizes and sha256 of ``needs`` from the hub, one paths-info call per repository and revision.

    Returns:
        (folder, name) → reason, for files whose size could not be had (not on the hub, gated...).

    Raises:
        DownloadError: the hub cannot be reached at all (nothing was learned).
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    groups: dict[tuple[str, str], list[Need]] = {}
    problems: dict[tuple[str, str], str] = {}
    for need in needs:
        if need.repo_id is None:
            problems[need.key] = "not a Hugging Face URL: download it by hand"
        else:
            groups.setdefault((need.repo_id, need.revision), []).append(need)
    reached = False
    for (repo_id, revision), members in groups.items():
        try:
            infos = api.get_paths_info(repo_id, [n.path for n in members], revision=revision)
        except Exception as err:  # noqa: BLE001 - classified below
            reason, _ = describe_error(err)
            if not reached and (is_transient(err) or "OfflineModeIsEnabled" in _error_names(err)):
                raise DownloadError(reason) from err
            for need in members:
                problems[need.key] = reason
            continue
        reached = True
        found = {info.path: info for info in infos}
        for need in members:
            info = found.get(need.path)
            if info is None or not hasattr(info, "size"):
                problems[need.key] = f"not found in {repo_id} at {revision}"
                continue
            need.size = int(info.size)
            lfs = getattr(info, "lfs", None)
            sha = getattr(lfs, "sha256", None) if lfs is not None else None
            need.sha256 = sha if sha and re.fullmatch(r"[0-9a-f]{64}", sha) else None
    return problems


def _http_headers(location: str, endpoint: str, token) -> dict:
    """Headers for the byte download: the token only goes to the hub's own host, never to a CDN."""
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token)
    if urlparse(location).netloc != urlparse(endpoint).netloc:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return headers


def _lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock, one run at a time is the user's business
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_one(need: Need, endpoint: str, token=None, verify: bool = True, force: bool = False,
                 log=print) -> Path:
    """Download ``need`` to ``need.local`` through ``<name>.part`` (resumed when possible).

    Raises:
        DownloadError: the hub refused or could not be reached (``hub=True``), or the file failed
            its checks / the disk failed (``hub=False``).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get

    target = need.local
    target.parent.mkdir(parents=True, exist_ok=True)
    part, part_meta = part_paths(target)
    options = {"token": token}
    if "endpoint" in inspect.signature(get_hf_file_metadata).parameters:  # huggingface_hub >= 1.0
        options["endpoint"] = endpoint
    try:
        meta = get_hf_file_metadata(hf_hub_url(need.repo_id, need.path, revision=need.revision, endpoint=endpoint),
                                    **options)
    except Exception as err:  # noqa: BLE001
        reason, hub = describe_error(err)
        raise DownloadError(reason, hub) from err
    size = meta.size if meta.size is not None else need.size
    identity = {"url": need.url, "etag": meta.etag, "size": size}
    for attempt in (1, 2):
        with open(part, "ab") as handle:
            if not _lock(handle):
                raise DownloadError(f"another download of {part.name} is running", hub=False)
            try:
                recorded = json.loads(part_meta.read_text(encoding="utf-8")) if part_meta.is_file() else None
            except (OSError, ValueError):
                recorded = None
            have = handle.tell()
            if have and (recorded != identity or (size is not None and have > size)):
                log(f"  {part.name}: the partial file is from another version of the file; starting again")
                handle.truncate(0)
                have = 0
            elif have:
                log(f"  resuming {need.name} at {human(have)} of {human(size)}")
            part_meta.write_text(json.dumps(identity), encoding="utf-8")
            for tries in range(RETRIES + 1):
                try:
                    http_get(meta.location, handle, resume_size=have,
                             headers=_http_headers(meta.location, endpoint, token), expected_size=size,
                             displayed_filename=Path(need.name).name)
                    break
                except Exception as err:  # noqa: BLE001 - the .part stays for the next try or run
                    handle.flush()
                    have = handle.tell()
                    reason, hub = describe_error(err)
                    if not is_transient(err) or tries == RETRIES:
                        raise DownloadError(f"{reason}; {human(have)} kept in {part.name}, run again to resume",
                                            hub) from err
                    log(f"  {reason}; resuming at {human(have)}")
        got = part.stat().st_size
        problem = None
        if size is not None and got != size:
            problem = f"size {got} instead of {size}"
        elif verify and need.sha256:
            log(f"  checking sha256 of {need.name} ...")
            digest = sha256_of(part)
            if digest != need.sha256:
                problem = f"sha256 {digest[:12]}… instead of {need.sha256[:12]}…"
        if problem is None:
            break
        part.unlink(missing_ok=True)
        part_meta.unlink(missing_ok=True)
        if attempt == 2:
            raise DownloadError(f"the download failed its check twice ({problem})", hub=False)
        log(f"  {need.name}: {problem}; downloading it again from the start")
    if target.exists() and not force:
        raise DownloadError(f"{target} appeared meanwhile; not replaced (use --force)", hub=False)
    os.replace(part, target)
    part_meta.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------------

def human(size: int | None) -> str:
    if size is None:
        return "? B"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def table(needs: list[Need], models: Path) -> str:
    rows = [("file", "size", "folder", "status")]
    for need in needs:
        status = need.status
        if status == "differs":
            status = f"differs: {human(need.local_size)} here"
        elif status == "partial":
            part, _ = part_paths(need.local)
            status = f"partial: {human(part.stat().st_size)} (resumes)"
        elif status == "present" and need.local.parent.name != need.directory:
            status = f"present (in {need.local.parent.name}/)"
        rows.append((need.name, human(need.size) if need.size is not None else "?", f"{need.directory}/", status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"Models folder: {models}\n" + "\n".join(lines)


def manual_instructions(needs: list[Need], models: Path, reasons: dict[tuple[str, str], str], endpoint: str) -> str:
    lines = ["", "These files could not be downloaded. Get them by hand (a browser, `hf download`, a mirror) and",
             "put each one in the folder shown, under the same name:"]
    for need in needs:
        lines.append(f"  - {need.name}" + (f"  [{human(need.size)}]" if need.size else ""))
        lines.append(f"      from:  {need.url}")
        lines.append(f"      to:    {models / need.directory}{os.sep}")
        if need.key in reasons:
            lines.append(f"      why:   {reasons[need.key]}")
    lines.append(f"Hub used: {endpoint}. Another endpoint (a mirror): --hf-endpoint URL or HF_ENDPOINT. "
                 "Run this command again afterwards to check the files.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.download",
        description="Download the model files the shipped Chain-of-Steps workflows need (read from their "
                    "properties.models entries) into ComfyUI's model folders, with sizes shown first, a progress "
                    "bar, and resume after an interruption.",
        epilog="Exit codes: 0 all files in place; 1 a local problem (a file of another size left alone, a failed "
               "check, the disk); 2 bad arguments, or files that could not be fetched (offline, unreachable, gated) "
               "- their URLs and folders are printed.")
    parser.add_argument("--workflow", default="all",
                        help="a workflow of workflows/ by name (e.g. wan22_i2v_chain_of_steps) or 'all' (default)")
    parser.add_argument("--optional", action="append", default=[], metavar="SET",
                        help="also fetch an optional set from tools/download_files.json (e.g. vbvr, vbvr-wan2.2, "
                             "or 'all'); repeatable")
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"),
                        help="the ComfyUI folder whose models/ receives the files (default: $COMFYUI_PATH)")
    parser.add_argument("--models-dir", default=None,
                        help="a models folder to use instead of <comfyui>/models (with diffusion_models/, vae/, ...)")
    parser.add_argument("--dry-run", action="store_true", help="show the files, sizes and folders; download nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace files already in place whose size differs from the hub's")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check after a download")
    parser.add_argument("--hf-endpoint", default=None,
                        help="Hugging Face endpoint or mirror (default: $HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--list", action="store_true", help="list the workflows and optional sets, and exit")
    return parser


def collect(args) -> tuple[list[Need], list[str]]:
    workflows = shipped_workflows()
    if args.workflow != "all":
        key = Path(args.workflow).stem
        if key not in workflows:
            raise ValueError(f"--workflow: no workflow '{args.workflow}' in workflows/; known: {', '.join(workflows)}")
        workflows = {key: workflows[key]}
    needs, warnings = [], []
    for path in workflows.values():
        found, warned = workflow_needs(path)
        needs += found
        warnings += warned
    if args.optional:
        needs += optional_needs(args.optional, load_manifest())
    return merge(needs), warnings


def main(argv: list[str] | None = None, log=print) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for name, path in shipped_workflows().items():
            needs, _ = workflow_needs(path)
            log(f"workflow {name}: " + ", ".join(f"{n.directory}/{n.name}" for n in merge(needs)))
        for name, spec in (load_manifest().get("optional") or {}).items():
            log(f"optional {name}: {spec.get('description', '')}")
        return 0
    try:
        needs, warnings = collect(args)
        models = find_models_root(args.comfyui, args.models_dir)
    except (ValueError, OSError) as err:
        log(f"error: {err}")
        return 2
    for warning in warnings:
        log(f"warning: {warning}")
    if not needs:
        log("No model files to fetch.")
        return 0
    for need in needs:
        local_status(need, models)
    endpoint = (args.hf_endpoint or default_endpoint()).rstrip("/")
    pending = [n for n in needs if n.status != "present"]
    try:
        if offline_mode():
            raise DownloadError("offline mode (HF_HUB_OFFLINE) is on")
        reasons = fetch_sizes(needs, endpoint)
    except DownloadError as err:
        log(table(needs, models))
        if not pending:
            log(f"All {len(needs)} files are in place (their sizes were not compared with the hub: {err}).")
            return 0
        log(manual_instructions(pending, models, {n.key: str(err) for n in pending}, endpoint))
        return 2
    for need in needs:
        compare_sizes(need)
    log(table(needs, models))
    todo = [n for n in needs if n.status in ("missing", "partial") or (n.status == "differs" and args.force)]
    left_alone = [n for n in needs if n.status == "differs" and not args.force]
    unfetchable = [n for n in todo if n.key in reasons]
    todo = [n for n in todo if n.key not in reasons]
    remaining = sum(n.size - (part_paths(n.local)[0].stat().st_size if n.status == "partial" else 0)
                    for n in todo if n.size is not None)
    if todo:
        log(f"To download: {len(todo)} file(s), {human(remaining)}.")
    for need in left_alone:
        log(f"{need.local}: {human(need.local_size)} here, {human(need.size)} on the hub; left alone "
            "(--force replaces it)")
    if args.dry_run:
        if unfetchable:
            log(manual_instructions(unfetchable, models, reasons, endpoint))
            return 2
        log("Dry run: nothing downloaded.")
        return 0
    if todo:
        free = shutil.disk_usage(models if models.exists() else models.parent).free
        if remaining > free:
            log(f"error: {human(remaining)} to download but only {human(free)} free under {models}")
            return 1
    failed_local = []
    for index, need in enumerate(todo, 1):
        log(f"[{index}/{len(todo)}] {need.name} ({human(need.size)}) from {need.repo_id} → "
            f"{need.directory}/")
        try:
            download_one(need, endpoint, verify=not args.no_verify, force=args.force, log=log)
            log(f"  done: {need.local}")
        except DownloadError as err:
            log(f"  failed: {err}")
            reasons[need.key] = str(err)
            (unfetchable if err.hub else failed_local).append(need)
        except KeyboardInterrupt:
            log("\ninterrupted: run the same command again to resume")
            return 130
    if unfetchable:
        log(manual_instructions(unfetchable, models, reasons, endpoint))
        return 2
    if failed_local or left_alone:
        return 1
    log(f"All {len(needs)} files are in place.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
