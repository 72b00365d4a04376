#!/usr/bin/env python3
"""Drives an iRODS server (our fake, in the tests) with the real python-irodsclient and asserts every result.

Usage: irods-crosscheck.py HOST PORT ZONE USER PASSWORD WORKDIR
Prints one final line: "irods crosscheck: N checks passed". Exits non-zero on the first failed check.
"""
import hashlib
import os
import sys

from irods.session import iRODSSession
from irods.meta import iRODSMeta
import irods.exception as ex

host, port, zone, user, password, workdir = sys.argv[1:7]
port = int(port)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"CHECK FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def expect_error(fn, exc_types, what):
    try:
        fn()
    except exc_types:
        check(True, what)
        return
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: wrong exception {type(e).__name__}: {e}")
    check(False, f"{what}: no exception")


home = f"/{zone}/home/{user}"
base = f"{home}/crosscheck"
os.makedirs(workdir, exist_ok=True)

with iRODSSession(host=host, port=port, user=user, password=password, zone=zone) as s:
    # connect + native auth
    check(s.server_version == (4, 2, 8), f"server version {s.server_version}")

    # collections: create with parents, get, listing
    sub = s.collections.create(f"{base}/sub/deeper")
    check(sub.path == f"{base}/sub/deeper", "created collection path")
    check(s.collections.exists(f"{base}/sub"), "parent collection was created")
    coll = s.collections.get(base)
    check(coll.name == "crosscheck", "collection name")

    # small put/get
    small = os.path.join(workdir, "small.txt")
    with open(small, "wb") as f:
        f.write(b"hello iRODS\n" * 10)
    s.data_objects.put(small, f"{base}/small.txt")
    obj = s.data_objects.get(f"{base}/small.txt")
    check(obj.size == 120, f"small object size {obj.size}")
    check(obj.name == "small.txt", "small object name")
    check(obj.collection.path == base, "small object collection")
    back = os.path.join(workdir, "small.back")
    s.data_objects.get(f"{base}/small.txt", back)
    with open(back, "rb") as f:
        check(f.read() == b"hello iRODS\n" * 10, "small get content")

    # multi-MiB put/get (more than one 8 MiB PRC buffer? 12 MiB → two writes, several reads)
    big = os.path.join(workdir, "big.bin")
    payload = os.urandom(12 * 1024 * 1024 + 123)
    with open(big, "wb") as f:
        f.write(payload)
    s.data_objects.put(big, f"{base}/big.bin")
    obj = s.data_objects.get(f"{base}/big.bin")
    check(obj.size == len(payload), f"big object size {obj.size}")
    big_back = os.path.join(workdir, "big.back")
    s.data_objects.get(f"{base}/big.bin", big_back)
    with open(big_back, "rb") as f:
        check(f.read() == payload, "big get content")

    # checksum (server policy: MD5 hex)
    check(s.data_objects.chksum(f"{base}/big.bin") == hashlib.md5(payload).hexdigest(), "md5 checksum of big.bin")
    obj = s.data_objects.get(f"{base}/big.bin")
    check(obj.checksum == hashlib.md5(payload).hexdigest(), "checksum registered in the catalog")

    # names with quotes and ampersands survive the XML both ways
    odd = "it's & <odd> \"name\".txt"
    s.data_objects.put(small, f"{base}/{odd}")
    check(s.data_objects.exists(f"{base}/{odd}"), "odd name exists")

    # collection listing
    coll = s.collections.get(base)
    check(sorted(c.name for c in coll.subcollections) == ["sub"], "subcollections")
    check(sorted(d.name for d in coll.data_objects) == sorted(["big.bin", "small.txt", odd]), "data objects listed")

    # AVUs on a data object
    obj = s.data_objects.get(f"{base}/small.txt")
    obj.metadata.add("color", "blue")
    obj.metadata.add("size", "10", "cm")
    avus = sorted((m.name, m.value, m.units) for m in s.data_objects.get(f"{base}/small.txt").metadata.items())
    check(avus == [("color", "blue", None), ("size", "10", "cm")] or avus == [("color", "blue", ""), ("size", "10", "cm")], f"data AVUs {avus}")
    obj.metadata.remove("color", "blue")
    avus = [(m.name, m.value) for m in s.data_objects.get(f"{base}/small.txt").metadata.items()]
    check(avus == [("size", "10")], f"data AVUs after remove {avus}")
    expect_error(lambda: obj.metadata.add("size", "10", "cm"), ex.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, "duplicate AVU")
    obj.metadata.set("size", "20", "m")
    avus = [(m.name, m.value, m.units) for m in s.data_objects.get(f"{base}/small.txt").metadata.items()]
    check(avus == [("size", "20", "m")], f"data AVUs after set {avus}")

    # AVUs on a collection
    coll.metadata.add(iRODSMeta("project", "mesa & co"))
    items = [(m.name, m.value) for m in s.collections.get(base).metadata.items()]
    check(items == [("project", "mesa & co")], f"collection AVUs {items}")
    check(s.collections.get(base).metadata.get_one("project").value == "mesa & co", "collection AVU get_one")
    coll.metadata.remove("project", "mesa & co")
    check(len(s.collections.get(base).metadata.items()) == 0, "collection AVUs after remove")

    # missing objects and collections
    expect_error(lambda: s.data_objects.get(f"{base}/missing.txt"), ex.DataObjectDoesNotExist, "missing data object")
    expect_error(lambda: s.collections.get(f"{base}/missing"), ex.CollectionDoesNotExist, "missing collection")
    expect_error(
        lambda: s.data_objects.get(f"{base}/missing.txt", os.path.join(workdir, "missing.back")),
        (ex.DataObjectDoesNotExist, ex.OBJ_PATH_DOES_NOT_EXIST),
        "download of a missing object",
    )
    expect_error(lambda: s.data_objects.unlink(f"{base}/missing.txt", force=True), ex.USER_FILE_DOES_NOT_EXIST, "unlink of a missing object")

    # unlink
    s.data_objects.unlink(f"{base}/{odd}", force=True)
    check(not s.data_objects.exists(f"{base}/{odd}"), "unlinked object is gone")

# wrong password
with iRODSSession(host=host, port=port, user=user, password=password + "-wrong", zone=zone) as bad:
    expect_error(lambda: bad.collections.get(home), ex.CAT_INVALID_AUTHENTICATION, "wrong password")

print(f"irods crosscheck: {checks} checks passed")
