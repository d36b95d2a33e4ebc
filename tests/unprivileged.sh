#!/bin/sh
# The non-slow suite as an unprivileged user (nobody), with the packages of the venv given ($1).
# As a non-root user it simply runs the suite. As root it drops to nobody; when the venv's
# interpreter lives where nobody cannot reach it (pyenv under /root, mode 0700), a venv of the
# system's Python of the same version borrows the venv's packages instead.
set -eu
venv=$(cd "$1" && pwd)
shift
if [ "$(id -u)" != 0 ]; then
    exec "$venv/bin/python" -m pytest -m "not slow" -p no:cacheprovider "$@"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
chmod 755 "$work"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$work/home" "$@"; }
python="$venv/bin/python"
if ! as_nobody "$python" -c "" 2>/dev/null; then
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    system="/usr/bin/python$version"
    if [ ! -x "$system" ]; then
        echo "the venv's Python is unreachable for user nobody and there is no $system to stand in" >&2
        exit 1
    fi
    "$system" -m venv --without-pip "$work/venv"
    site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "import site; site.addsitedir('$site')" > "$work/venv/lib/python$version/site-packages/edge-venv.pth"
    python="$work/venv/bin/python"
    echo "running as nobody with $system and the packages of $venv"
fi
mkdir "$work/home"
chown 65534:65534 "$work/home"
as_nobody "$python" -m pytest -m "not slow" -p no:cacheprovider -o cache_dir="$work/home/.cache" "$@"
