"""The dynamic-registration secret on flash (``save_secret`` and ``write_file`` in
lib/aliyun/secret.py, ``load_secret`` in lib/aliyun/login.py): a checked backup first, atomic
replacement, a power cut at any step of the save leaves a whole copy once the backup is
written."""

import os
from binascii import hexlify

from ptest import raises

from aliyun import secret as login
from aliyun.login import load_secret
from aliyun.secret import save_secret

CONFIG = {"product_key": "pk1", "device_name": "dev1"}
RECORD = {"product_key": "pk1", "device_name": "dev1", "device_secret": "s3cr3t-0123456789"}


def _path():
    return "ptest_secret_" + hexlify(os.urandom(4)).decode() + ".json"


def _clean(path):
    for name in (path, path + ".tmp", path + ".bak", path + ".bak.tmp"):
        try:
            os.remove(name)
        except OSError:
            pass


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class CutOs:
    """``os`` for aliyun.secret with the power cut at the ``after``-th rename."""

    def __init__(self, after):
        self.left = after

    def rename(self, a, b):
        if self.left == 0:
            raise OSError(5)
        self.left -= 1
        os.rename(a, b)

    def remove(self, path):
        os.remove(path)


def test_save_writes_a_checked_backup_and_the_file():
    path = _path()
    try:
        save_secret(path, RECORD)
        assert load_secret(path, CONFIG) == RECORD["device_secret"]
        assert _read(path) == _read(path + ".bak")
        save_secret(path, RECORD)  # saving again replaces both
        assert load_secret(path, CONFIG) == RECORD["device_secret"]
    finally:
        _clean(path)


def test_a_damaged_file_falls_back_to_the_backup():
    path = _path()
    try:
        save_secret(path, RECORD)
        whole = _read(path)
        for cut in range(len(whole)):
            with open(path, "wb") as f:
                f.write(whole[:cut])
            assert load_secret(path, CONFIG) == RECORD["device_secret"], cut
        os.remove(path)
        assert load_secret(path, CONFIG) == RECORD["device_secret"]
        os.remove(path + ".bak")
        assert load_secret(path, CONFIG) is None
    finally:
        _clean(path)


def test_power_cut_at_each_step_of_the_save():
    path = _path()
    saved_os = login.os
    try:
        for renames, kept in ((0, False), (1, True)):
            login.os = CutOs(renames)
            with raises(OSError):
                save_secret(path, RECORD)
            login.os = saved_os
            with open(path + ".tmp", "wb") as f:
                f.write(b'{"product_key": "pk1", "dev')  # a torn temporary file
            got = load_secret(path, CONFIG)
            assert got == (RECORD["device_secret"] if kept else None), renames
            save_secret(path, RECORD)  # the next save (a new registration) completes
            assert load_secret(path, CONFIG) == RECORD["device_secret"]
            _clean(path)
    finally:
        login.os = saved_os
        _clean(path)


def test_write_file_refuses_a_copy_that_does_not_read_back():
    path = _path()
    real_open = login.__dict__.get("open")

    class Forgetful:
        def __init__(self, name, mode="r"):
            self.f = open(name, mode)
            self.mode = mode

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            return self.f.write(data[:-1])  # the flash kept all but the last byte

        def read(self):
            return self.f.read()

    try:
        login.open = Forgetful
        with raises(OSError):
            login.write_file(path, b"secret")
        assert load_secret(path, CONFIG) is None
    finally:
        if real_open is None:
            del login.open
        else:
            login.open = real_open
        _clean(path)
