"""Checksummed downloads that never leave half a file behind.

A download streams into a temporary file beside its destination and is renamed into place only
after its length and SHA-256 match; a refused, truncated or corrupted transfer leaves nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from saddlepoint.fileio import atomic_path, content_digest

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be fetched, or what arrived was not the expected file."""


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and check its SHA-256; return ``dest``.

    An existing ``dest`` with the right checksum is kept without a download.
    """
    dest = Path(dest)
    if dest.is_file() and content_digest(dest) == sha256:
        return dest
    log.info("downloading %s", url)
    with atomic_path(dest) as temp:
        digest = hashlib.sha256()
        received = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(temp, "wb") as out:
                length = response.headers.get("Content-Length")
                expected = int(length) if length is not None else None
                bar = tqdm(
                    total=expected,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                )
                with bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DownloadError(f"Could not download {url}: {error}") from error
        if expected is not None and received != expected:
            raise DownloadError(
                f"Download of {url} was truncated: got {received} of {expected} bytes. "
                "Nothing was kept; try again."
            )
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"Download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}. "
                "Nothing was kept: the file is corrupt or not the expected one."
            )
    return dest


def fetch_any(
    urls: Sequence[str], dest: str | os.PathLike[str], sha256: str, **kwargs: Any
) -> Path:
    """Try each mirror in turn; raise one error listing every failure."""
    errors = []
    for url in urls:
        try:
            return fetch(url, dest, sha256, **kwargs)
        except DownloadError as error:
            errors.append(str(error))
    raise DownloadError("All mirrors failed:\n  " + "\n  ".join(errors))


def extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar archive into ``dest``, refusing members that point outside it."""
    dest = Path(dest).resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if dest not in target.parents and target != dest:
                raise DownloadError(f"Refusing to extract {member.name!r}: it leaves {dest}.")
            if member.issym() or member.islnk():
                raise DownloadError(f"Refusing to extract link {member.name!r} from {archive}.")
        tar.extractall(dest, filter="data")
    return dest
