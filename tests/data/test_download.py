import hashlib

import pytest

from saddlepoint.data.download import DownloadError, fetch, fetch_any


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BODY = bytes(range(256)) * 400  # 100 KiB, several chunks


def test_good_download(tmp_path, server):
    url = server.serve("/good.bin", BODY)
    path = fetch(url, tmp_path / "good.bin", sha(BODY), progress=False)
    assert path.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin"]


def test_wrong_checksum_leaves_nothing(tmp_path, server):
    url = server.serve("/bad.bin", BODY)
    with pytest.raises(DownloadError, match="SHA-256"):
        fetch(url, tmp_path / "bad.bin", sha(b"something else"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_leaves_nothing(tmp_path, server):
    url = server.serve("/cut.bin", BODY[:5000], declared=len(BODY))
    with pytest.raises(DownloadError):
        fetch(url, tmp_path / "cut.bin", sha(BODY), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_verified_file_is_not_downloaded_again(tmp_path, server):
    url = server.serve("/good.bin", BODY)
    fetch(url, tmp_path / "good.bin", sha(BODY), progress=False)
    fetch(url, tmp_path / "good.bin", sha(BODY), progress=False)
    assert server.hits == ["/good.bin"]


def test_corrupt_existing_file_is_replaced(tmp_path, server):
    (tmp_path / "good.bin").write_bytes(b"stale")
    url = server.serve("/good.bin", BODY)
    fetch(url, tmp_path / "good.bin", sha(BODY), progress=False)
    assert (tmp_path / "good.bin").read_bytes() == BODY


def test_mirrors_are_tried_in_turn(tmp_path, server):
    good = server.serve("/b/file", BODY)
    path = fetch_any([server.base + "/a/file", good], tmp_path / "file", sha(BODY), progress=False)
    assert path.read_bytes() == BODY
    assert server.hits == ["/a/file", "/b/file"]


def test_all_mirrors_failing_lists_each(tmp_path, server):
    with pytest.raises(DownloadError) as info:
        fetch_any(
            [server.base + "/x", server.base + "/y"], tmp_path / "f", sha(BODY), progress=False
        )
    assert "/x" in str(info.value) and "/y" in str(info.value)
