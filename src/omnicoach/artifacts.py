"""Trained artifacts the product ships (DESIGN.md §4): a directory with a manifest.json that
records what each file is (sha256), how to rebuild it, and what it measured.

Writing is atomic per artifact: files are assembled in a sibling temporary directory that
replaces the old one only when complete, so a crashed training run never leaves a half-written
artifact where the server loads it from.
"""

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from omnicoach.errors import ModelFileError

MANIFEST = "manifest.json"
REPO = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_commit() -> str | None:
    """The git commit of the code that trained it (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + ("+uncommitted changes" if dirty else "")


@contextmanager
def writing(directory: Path):
    """Yield a temporary directory to fill; on success it becomes DIRECTORY."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; artifacts are for everyone to read
        for file in staging.rglob("*"):
            file.chmod(0o755 if file.is_dir() else 0o644)
        previous = directory.with_name(f".{directory.name}-previous")
        shutil.rmtree(previous, ignore_errors=True)
        if directory.exists():
            directory.rename(previous)
        staging.rename(directory)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_manifest(
    directory: Path, *, name: str, command: str, seed: int, started: float, **facts
) -> dict:
    """Write DIRECTORY/manifest.json over the files already in it; returns the manifest."""
    files = {
        str(p.relative_to(directory)): sha256(p)
        for p in sorted(Path(directory).rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "name": name,
        "command": command,
        "seed": seed,
        "code_commit": code_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_s": round(time.time() - started, 1),
        **facts,
        "files": files,
    }
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def read_manifest(directory: Path, verify: bool = True) -> dict:
    """The manifest of an artifact; with VERIFY, every file must match its recorded sha256."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{directory} is not a trained artifact (no {MANIFEST})")
    manifest = json.loads(path.read_text())
    if verify:
        for name, digest in manifest["files"].items():
            file = Path(directory) / name
            if not file.is_file():
                raise ModelFileError(f"artifact {directory} is missing {name}")
            if sha256(file) != digest:
                raise ModelFileError(
                    f"artifact file {file} does not match its manifest (corrupt or edited); "
                    f"rebuild it with: {manifest['command']}"
                )
    return manifest
