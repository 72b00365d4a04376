#!/usr/bin/env python3
"""Drives an iRODS server (our fake, in the tests) with the real python-irodsclient and asserts every result.

Usage: irods-crosscheck.py HOST PORT ZONE USER PASSWORD WORKDIR [ALICE_PASSWORD BOB_PASSWORD]
With the two extra passwords it also checks access control: it logs in as the rodsusers alice and bob (which the
caller made beforehand), creates the group `lab`, sets and reads ACLs and inheritance, and checks what each user
may do; it expects the collection USER's home/ours prepared by the caller (see test/irods/crosscheck.test.ts) and
writes what it read to WORKDIR/acls.json for the caller to compare with its own client.
Prints one final line: "irods crosscheck: N checks passed". Exits non-zero on the first failed check.
"""
import hashlib
import json
import os
import sys

from irods.session import iRODSSession
from irods.meta import iRODSMeta
from irods.access import iRODSAccess
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


def acl_of(sess, path):
    """The ACL python-irodsclient reads (raw rows, as `ils -A`): sorted (user, zone, access name, user type)."""
    target = sess.collections.get(path) if sess.collections.exists(path) else sess.data_objects.get(path)
    return sorted((a.user_name, a.user_zone, a.access_name, a.user_type) for a in sess.acls.get(target))


def read_as(sess, path):
    with sess.data_objects.open(path, "r") as f:
        return f.read()


def write_as(sess, path, data):
    with sess.data_objects.open(path, "w") as f:
        f.write(data)


if len(sys.argv) >= 9:
    alice_pw, bob_pw = sys.argv[7:9]
    A = f"{home}/acl"
    OURS = f"{home}/ours"
    dump = {"acls": {}, "members": {}}
    hidden = (ex.DataObjectDoesNotExist, ex.CollectionDoesNotExist)  # STRICT: what one cannot read is not found
    with iRODSSession(host=host, port=port, user=user, password=password, zone=zone) as s, \
            iRODSSession(host=host, port=port, user="alice", password=alice_pw, zone=zone) as a, \
            iRODSSession(host=host, port=port, user="bob", password=bob_pw, zone=zone) as b:
        rods_own = (user, zone, "own", "rodsadmin")

        # users and groups (GENERAL_ADMIN 701 for the group, GenQuery 900/901 for members)
        check(s.users.get("alice").type == "rodsuser", "alice is a rodsuser")
        check(s.users.get("anonymous").type == "rodsuser", "anonymous exists")
        lab = s.groups.create("lab")
        check(lab.name == "lab" and s.users.get("lab").type == "rodsgroup", "group lab created as rodsgroup")
        lab.addmember("alice")
        check([u.name for u in s.groups.get("lab").members] == ["alice"], "lab members")
        check(not s.groups.get("lab").hasmember("bob"), "bob is not in lab")
        public = sorted(u.name for u in s.groups.get("public").members)
        check({"alice", "bob", user} <= set(public) and "anonymous" not in public, f"public members {public}")
        expect_error(lambda: a.groups.create("alices"), ex.SYS_NO_API_PRIV, "a rodsuser cannot create groups")
        for g in ("lab", "public"):
            dump["members"][g] = sorted(u.name for u in s.groups.get(g).members)

        # data object ACLs: the creator owns; grants to a user, a group and public; revoke
        s.collections.create(A)
        small = os.path.join(workdir, "acl.txt")
        with open(small, "wb") as f:
            f.write(b"secret\n")
        for name in ("f.txt", "g.txt", "p.txt"):
            s.data_objects.put(small, f"{A}/{name}")
        check(acl_of(s, f"{A}/f.txt") == [rods_own], "creator owns f.txt")
        s.acls.set(iRODSAccess("read", A, "alice", zone))
        s.acls.set(iRODSAccess("read object", f"{A}/f.txt", "alice", zone))  # PRC sends "read" to 4.2.x
        check(("alice", zone, "read object", "rodsuser") in acl_of(s, f"{A}/f.txt"), "alice reads f.txt")
        check(read_as(a, f"{A}/f.txt") == b"secret\n", "alice reads the content")
        expect_error(lambda: write_as(a, f"{A}/f.txt", b"x"), ex.CAT_NO_ACCESS_PERMISSION, "alice may not write f.txt")
        expect_error(lambda: b.data_objects.get(f"{A}/f.txt"), hidden, "bob cannot see f.txt (STRICT)")
        s.acls.set(iRODSAccess("write", f"{A}/f.txt", "alice", zone))
        check(("alice", zone, "modify object", "rodsuser") in acl_of(s, f"{A}/f.txt"), "alice may modify f.txt")
        write_as(a, f"{A}/f.txt", b"alice\n")
        check(read_as(s, f"{A}/f.txt") == b"alice\n", "alice wrote f.txt")
        s.acls.set(iRODSAccess("write", f"{A}/g.txt", "lab", zone))
        check(("lab", zone, "modify object", "rodsgroup") in acl_of(s, f"{A}/g.txt"), "lab may modify g.txt")
        write_as(a, f"{A}/g.txt", b"lab\n")
        check(read_as(s, f"{A}/g.txt") == b"lab\n", "alice wrote g.txt through lab")
        s.acls.set(iRODSAccess("read", A, "public", zone))
        s.acls.set(iRODSAccess("read", f"{A}/p.txt", "public", zone))
        check(read_as(b, f"{A}/p.txt") == b"secret\n", "bob reads p.txt through public")
        s.acls.set(iRODSAccess("null", f"{A}/p.txt", "public", zone))
        check(acl_of(s, f"{A}/p.txt") == [rods_own], "public revoked on p.txt")
        expect_error(lambda: b.data_objects.get(f"{A}/p.txt"), hidden, "bob lost p.txt")

        # inheritance: copied at creation time only, sub-collections inherit the flag
        inh = f"{A}/inh"
        s.collections.create(inh)
        s.acls.set(iRODSAccess("read", inh, "bob", zone))
        s.acls.set(iRODSAccess("inherit", inh))
        check(s.collections.get(inh).inheritance is True, "inheritance on")
        s.data_objects.put(small, f"{inh}/new.txt")
        parent_acl = acl_of(s, inh)
        check(acl_of(s, f"{inh}/new.txt") == parent_acl, "new object copies the parent's ACL")
        s.collections.create(f"{inh}/sub")
        check(s.collections.get(f"{inh}/sub").inheritance is True, "sub-collection inherits the flag")
        check(acl_of(s, f"{inh}/sub") == parent_acl, "sub-collection copies the parent's ACL")
        s.acls.set(iRODSAccess("write", inh, "alice", zone))
        check(("alice", zone, "modify object", "rodsuser") not in acl_of(s, f"{inh}/new.txt"), "existing child unchanged")
        s.data_objects.put(small, f"{inh}/later.txt")
        check(("alice", zone, "modify object", "rodsuser") in acl_of(s, f"{inh}/later.txt"), "new child sees the change")
        s.acls.set(iRODSAccess("noinherit", inh))
        check(s.collections.get(inh).inheritance is False, "inheritance off")

        # recursive grant
        s.acls.set(iRODSAccess("read", A, "lab", zone), recursive=True)
        for p in (A, f"{A}/f.txt", inh, f"{inh}/sub", f"{inh}/new.txt"):
            check(("lab", zone, "read object", "rodsgroup") in acl_of(s, p) or
                  ("lab", zone, "modify object", "rodsgroup") in acl_of(s, p), f"lab reaches {p} recursively")

        # who may change an ACL
        expect_error(lambda: a.acls.set(iRODSAccess("own", f"{A}/p.txt", "alice", zone)), ex.CAT_NO_ACCESS_PERMISSION,
                     "alice cannot chmod rods' object")
        mine = f"/{zone}/home/alice/mine.txt"
        a.data_objects.put(small, mine)
        check(acl_of(a, mine) == [("alice", zone, "own", "rodsuser")], "alice owns her object")
        expect_error(lambda: s.acls.set(iRODSAccess("read", mine, "bob", zone)), ex.CAT_NO_ACCESS_PERMISSION,
                     "rodsadmin without admin mode")
        s.acls.set(iRODSAccess("read", mine, "bob", zone), admin=True)
        check(("bob", zone, "read object", "rodsuser") in acl_of(s, mine), "bob granted by admin mode")
        # STRICT: the catalog query behind get() also needs read on the collection, which bob lacks on alice's home
        expect_error(lambda: b.data_objects.get(mine), hidden, "bob needs read on the collection too")

        # what our TypeScript client wrote before this script ran
        check(s.collections.get(OURS).inheritance is True, "our client's inheritance flag")
        check(("alice", zone, "read object", "rodsuser") in acl_of(s, OURS), "our client's grant to alice")
        check(("public", zone, "read object", "rodsgroup") in acl_of(s, OURS), "our client's grant to public")
        check(acl_of(s, f"{OURS}/x.txt") == acl_of(s, OURS), "our client's object inherited the ACL")
        check(read_as(b, f"{OURS}/x.txt") == b"ours\n", "bob reads our object through public")

        for p in (A, f"{A}/f.txt", f"{A}/g.txt", f"{A}/p.txt", inh, f"{inh}/sub", f"{inh}/new.txt",
                  f"{inh}/later.txt", mine, OURS, f"{OURS}/x.txt"):
            coll = s.collections.exists(p)
            dump["acls"][p] = {
                "kind": "collection" if coll else "data_object",
                "inherit": s.collections.get(p).inheritance if coll else False,
                "entries": [list(e) for e in acl_of(s, p)],
            }
    with open(os.path.join(workdir, "acls.json"), "w") as f:
        json.dump(dump, f, indent=1, sort_keys=True)

print(f"irods crosscheck: {checks} checks passed")
