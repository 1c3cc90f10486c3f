"""Where a study keeps what every worker must reach: its task cache and its trained models.

A ``Storage`` is a folder (the run folder by default, or a path every node of a cluster mounts)
or an object-store URL (``s3://bucket/prefix``, ``gs://...``: through fsspec, as Ray Tune's
``storage_path``). Files are written whole: a local file through a temporary file and a rename,
an object in one upload, so a reader never sees half a file. Files read from an object store
are kept in a local folder named by the storage, reused while their content is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from saddlepoint.fileio import content_digest, write_bytes, write_text

# what to install for each object store's filesystem
INSTALL = {
    "s3": "pip install 'saddlepoint[s3]'",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
}


class Storage:
    """A folder or an object-store URL; paths below it are relative, with '/' separators."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self.remote = "://" in self.root and not self.root.startswith("file://")
        self._fs: Any = None
        if not self.remote:
            self.folder = Path(self.root.removeprefix("file://"))

    def __repr__(self) -> str:
        return f"Storage({self.root!r})"

    def __getstate__(self) -> dict[str, Any]:  # the filesystem object is rebuilt where used
        return {**self.__dict__, "_fs": None}

    def check(self) -> Storage:
        """Fail now, with the package to install, if the storage cannot be reached from here."""
        if self.remote:
            self.fs  # noqa: B018 - builds the filesystem
        return self

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = object_filesystem(self.root)
        return self._fs

    def url(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def local_path(self, relative: str) -> Path:
        """A local file holding ``relative`` now: the file itself in a folder storage, else a
        copy downloaded into this machine's cache (None-safe: raises if it does not exist)."""
        if not self.remote:
            return self.folder / relative
        target = self.scratch_folder() / "files" / relative
        remote = self.fs.info(self.url(relative))
        tag = str(remote.get("ETag") or remote.get("etag") or remote.get("mtime") or "")
        marker = target.with_name(target.name + ".etag")
        if target.is_file() and marker.is_file() and marker.read_text() == tag:
            return target
        data = self.fs.cat_file(self.url(relative))
        write_bytes(target, data)
        write_text(marker, tag)
        return target

    def scratch_folder(self) -> Path:
        """A folder on this machine for files only one process needs (training state kept
        between epochs, downloads): beside the files for a folder storage."""
        if not self.remote:
            return self.folder
        digest = hashlib.sha256(self.root.encode()).hexdigest()[:16]
        base = os.environ.get("SADDLEPOINT_SCRATCH") or Path(tempfile.gettempdir()) / "saddlepoint"
        return Path(base) / digest

    def read_text(self, relative: str) -> str | None:
        """The file's text, or None if there is none."""
        try:
            if not self.remote:
                return (self.folder / relative).read_text()
            return self.fs.cat_file(self.url(relative)).decode()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError:
            if not self.remote:
                return None
            raise

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode())

    def write_bytes(self, relative: str, data: bytes) -> None:
        if not self.remote:
            write_bytes(self.folder / relative, data)
        else:
            self.fs.pipe_file(self.url(relative), data)

    def files(self, prefix: str = "") -> list[str]:
        """Every file under ``prefix``, as paths relative to the storage."""
        if not self.remote:
            base = self.folder / prefix
            if not base.is_dir():
                return []
            return sorted(str(p.relative_to(self.folder)) for p in base.rglob("*") if p.is_file())
        root = self.url(prefix).split("://", 1)[1].rstrip("/")
        start = len(self.root.split("://", 1)[1].rstrip("/")) + 1
        try:
            return sorted(path[start:] for path in self.fs.find(root))
        except FileNotFoundError:
            return []

    def put_file(self, local: Path, relative: str) -> None:
        """Copy ``local`` to ``relative`` (nothing to do when it is that file already)."""
        if not self.remote:
            target = self.folder / relative
            if local.resolve() != target.resolve():
                write_bytes(target, local.read_bytes())
            return
        self.fs.put_file(str(local), self.url(relative))

    def digest(self, relative: str) -> str | None:
        """SHA-256 of the file's content, or None if there is none."""
        if not self.remote:
            path = self.folder / relative
            return content_digest(path) if path.is_file() else None
        try:
            return content_digest(self.local_path(relative))
        except FileNotFoundError:
            return None


def object_filesystem(url: str) -> Any:
    """The fsspec filesystem for ``url``, with the package to install named when missing. An
    S3 endpoint other than AWS's is read from ``AWS_ENDPOINT_URL`` (as boto3 does)."""
    protocol = url.split("://", 1)[0]
    try:
        import fsspec
    except ImportError as error:
        raise ValueError(
            f"The storage (--storage) {url!r} needs fsspec: "
            f"{INSTALL.get(protocol, 'pip install fsspec')}."
        ) from error
    options: dict[str, Any] = {}
    if protocol == "s3" and os.environ.get("AWS_ENDPOINT_URL"):
        options["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    try:
        return fsspec.filesystem(protocol, **options)
    except (ImportError, ValueError) as error:
        hint = INSTALL.get(protocol, "a protocol fsspec knows (s3, gs, file)")
        raise ValueError(
            f"The storage (--storage) {url!r}: no filesystem for {protocol!r} here ({error}); "
            f"{hint}."
        ) from None
