"""The device's side of a remote run, run by the device's own ``python3`` before edge is there.

The host sends this file's source as ``python3 -c SOURCE COMMAND ARGS...`` (standard library
only, Python 3.7 and newer, nothing imported from edge) to learn about the device, to list
what it already holds and to receive files:

    info EDGE...       JSON: machine, Python version, glibc, home, the first EDGE that answers --version
    digests FOLDER     JSON: {relative path: sha256} of every file below FOLDER (absent: {})
    receive FOLDER     stdin: frames of a JSON header line {"path", "size", "sha256"} then the bytes,
                       ended by {"end": true}; each file lands under a temporary name, is checked
                       and renamed, so an interrupted copy never leaves a half-written file
"""

import hashlib
import json
import os
import platform
import subprocess
import sys

CHUNK = 1 << 20


def info(candidates):
    found = None
    for candidate in candidates:
        path = os.path.expanduser(candidate)
        try:
            done = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            found = {"path": path, "version": done.stdout.decode("utf-8", "replace").strip().split()[-1]}
            break
    libc = platform.libc_ver()
    return {"machine": platform.machine(), "python": "%d.%d" % sys.version_info[:2], "home": os.path.expanduser("~"),
            "libc": list(libc), "edge": found}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def digests(folder):
    found = {}
    for here, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".part"):
                continue
            path = os.path.join(here, name)
            found[os.path.relpath(path, folder)] = sha256(path)
    return found


def _inside(folder, relative):
    parts = relative.replace("\\", "/").split("/")
    if os.path.isabs(relative) or ".." in parts or not relative:
        raise SystemExit("refused a file name outside the destination: %r" % relative)
    return os.path.join(folder, *parts)


def receive(folder, stream):
    count = 0
    while True:
        header = json.loads(stream.readline().decode("utf-8"))
        if header.get("end"):
            return count
        path = _inside(folder, header["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = path + ".part"
        digest, left = hashlib.sha256(), header["size"]
        with open(partial, "wb") as out:
            while left:
                block = stream.read(min(CHUNK, left))
                if not block:
                    raise SystemExit("the stream ended inside %s" % header["path"])
                digest.update(block)
                out.write(block)
                left -= len(block)
        if digest.hexdigest() != header["sha256"]:
            os.unlink(partial)
            raise SystemExit("%s arrived damaged (sha256 differs)" % header["path"])
        os.replace(partial, path)
        count += 1


def main(argv):
    command, args = argv[0], argv[1:]
    if command == "info":
        print(json.dumps(info(args)))
    elif command == "digests":
        folder = os.path.expanduser(args[0])
        print(json.dumps(digests(folder) if os.path.isdir(folder) else {}))
    elif command == "receive":
        folder = os.path.expanduser(args[0])
        print(json.dumps({"received": receive(folder, sys.stdin.buffer)}))
    else:
        raise SystemExit("unknown command %r" % command)


if __name__ == "__main__":
    main(sys.argv[1:])
