"""Atomic writes: concurrent writers never collide on a temporary file, readers never see half a file."""

import os
import threading

import pytest

from openclaw_rl.atomic import FILE_MODE, atomic_write


def test_concurrent_writers_never_fail_or_leave_temporary_files(tmp_path):
    path, errors = tmp_path / "state.json", []
    payloads = [f"writer {k} ".encode() * 2000 for k in range(8)]

    def write(payload):
        try:
            for _ in range(100):
                atomic_write(path, payload)
                assert path.read_bytes() in payloads  # whole, from one writer
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert os.listdir(tmp_path) == ["state.json"]
    assert os.stat(path).st_mode & 0o777 == FILE_MODE


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, object())  # not bytes: fails while writing
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]
