#!/bin/bash
# The emulated Raspberry Pi: Debian bookworm arm64 (Python 3.11.2, as Raspberry Pi OS) under
# QEMU user mode, in a chroot. Correctness only: emulated timings mean nothing. Needs root.
#
#   lane.sh prepare      host packages, the root (restored from $EDGE_ARM64_CACHE or built with
#                        mmdebstrap), aarch64 wheels fetched by the host's pip, bundles exported on
#                        the host, and edge installed inside by the README's Raspberry Pi steps
#   lane.sh run PI CMD   run CMD inside as a Pi 4 (QEMU_CPU=cortex-a72) or Pi 5 (cortex-a76)
#   lane.sh sshd PI PORT KEYS   sshd inside on 127.0.0.1:PORT (KEYS: host_key, client_key.pub)
#
# Every mount (proc, a recorded Pi cpuinfo over /proc/cpuinfo, /dev, /run, /tmp, /sys) is made inside
# `unshare --mount`: it vanishes with the command, whether the command passes, fails or is killed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${EDGE_ARM64_CACHE:-/var/cache/edge-arm64}
WORK=${EDGE_ARM64_WORK:-$REPO/build/arm64}
ROOT=$WORK/root
BIN=${VENV_BIN:-$REPO/.venv/bin}
MACHINES=$REPO/tests/data/machines
PACKAGES=python3,python3-venv,ca-certificates,openssh-server
INSIDE=/opt/edge-tests  # the tests, the examples, the wheels and the host's bundles, inside the root
PYTHON=3.11             # bookworm's, as Raspberry Pi OS's

say() { echo "arm64: $*" >&2; }
die() { echo "arm64: error: $*" >&2; exit 1; }

mirror() {
    # the Debian mirror apt already uses here (the lane reaches no other)
    sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*\) bookworm main.*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1
    grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}'
}

host_packages() {
    local missing=
    command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
    command -v zstd >/dev/null || missing="$missing zstd"
    command -v /usr/sbin/sshd >/dev/null || missing="$missing openssh-server"
    if [ "$(uname -m)" != aarch64 ]; then
        [ -x /usr/bin/qemu-aarch64-static ] || missing="$missing qemu-user-static"
        command -v update-binfmts >/dev/null || missing="$missing binfmt-support"
    fi
    [ -z "$missing" ] && return
    say "installing Debian's$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null \
        || die "could not install$missing with apt-get"
}

binfmt() {
    [ "$(uname -m)" = aarch64 ] && return
    [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || update-binfmts --enable qemu-aarch64
    # F: the kernel opens QEMU when it is registered, so nothing is copied into the root
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "QEMU's aarch64 handler lacks the F flag"
}

base_root() {
    local key
    key=$(printf '%s\n' bookworm arm64 minbase "$PACKAGES" | sha256sum | cut -c1-12)
    BASE=$CACHE/bookworm-arm64-$key.tar.zst
    mkdir -p "$CACHE"
    [ -f "$BASE" ] && return
    local url; url=$(mirror)
    [ -n "$url" ] || die "found no Debian mirror in /etc/apt/sources.list*"
    say "building the root with mmdebstrap from $url (about 4-6 minutes, once; cached in $CACHE)"
    rm -rf "$WORK/fresh"
    mmdebstrap --quiet --arch=arm64 --variant=minbase --include="$PACKAGES" \
        --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' bookworm "$WORK/fresh" "$url" \
        || die "mmdebstrap failed (see above)"
    tar --zstd -cpf "$BASE.part" -C "$WORK/fresh" --numeric-owner . && mv "$BASE.part" "$BASE"
    rm -rf "$WORK/fresh"
}

restore() {
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    tar --zstd -xpf "$1" -C "$ROOT" --numeric-owner
    mkdir -p "$ROOT$INSIDE"
}

wheels() {
    local out=$WORK/wheels platforms=() n
    mkdir -p "$out"
    rm -f "$out"/edge_deploy-*.whl
    "$BIN/python" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w "$out" "$REPO" \
        || die "could not build edge's wheel from the checkout"
    for n in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${n}_aarch64"); done
    platforms+=(--platform manylinux2014_aarch64)
    say "fetching aarch64 wheels for Python $PYTHON with the host's pip"
    # pyopen-wakeword: a real TFLite model the profiler tests use (a package of models, no code deps)
    if ! "$BIN/python" -m pip download --disable-pip-version-check -q --only-binary=:all: --python-version "$PYTHON" \
            --implementation cp --abi cp311 "${platforms[@]}" -d "$out" \
            "$(ls "$out"/edge_deploy-*.whl)[text,images]" pytest pyopen-wakeword 2>"$WORK/pip.log"; then
        grep -E "ERROR|requires" "$WORK/pip.log" >&2 || tail -5 "$WORK/pip.log" >&2
        die "a dependency has no wheel for aarch64 / CPython $PYTHON: a Raspberry Pi could not install edge (above: which)"
    fi
}

host_bundles() {
    "$BIN/python" "$HERE/host_bundles.py" "$WORK/bundles" rpi4 rpi5 >"$WORK/host-bundles.log" 2>&1 \
        || { tail -20 "$WORK/host-bundles.log" >&2; die "exporting the lane's bundles on the host failed"; }
}

copy_in() {
    rm -rf "$ROOT$INSIDE/bundles" "$ROOT$INSIDE/tests" "$ROOT$INSIDE/examples" "$ROOT$INSIDE/wheels"
    mkdir -p "$ROOT$INSIDE/examples"
    cp -r "$WORK/bundles" "$ROOT$INSIDE/bundles"
    cp -r "$WORK/wheels" "$ROOT$INSIDE/wheels"
    cp -r "$REPO/tests" "$ROOT$INSIDE/tests"
    cp -r "$REPO/examples/digits" "$ROOT$INSIDE/examples/digits"
}

readme_steps() {
    sed -n '/<!-- pi-install:begin/,/<!-- pi-install:end/p' "$REPO/README.md" | sed -n '/^```sh$/,/^```$/p' | sed '1d;$d'
}

ready_root() {
    # The root after the README's Raspberry Pi steps, cached by what they depend on: the base root,
    # the steps themselves and every dependency wheel. Edge's own wheel changes with each commit:
    # on a cache hit only it is reinstalled.
    local key ready
    key=$( { echo "$BASE"; readme_steps; ls "$WORK/wheels" | grep -v '^edge_deploy-'; } | sha256sum | cut -c1-12)
    ready=$CACHE/ready-$key.tar.zst
    if [ -f "$ready" ]; then
        say "restoring the root as the README's steps left it ($ready)"
        restore "$ready"
        copy_in
        PI=4 run_inside /root/edge/bin/pip install -q --no-index --no-deps --force-reinstall \
            "$(ls "$ROOT$INSIDE"/wheels/edge_deploy-*.whl | sed "s|^$ROOT||")" || die "could not reinstall edge inside"
        return
    fi
    restore "$BASE"
    copy_in
    # The README's Raspberry Pi steps, word for word, with pip pointed at the wheels the host fetched
    # (PIP_NO_INDEX, PIP_FIND_LINKS: the commands themselves stay as printed).
    readme_steps > "$ROOT$INSIDE/readme-steps.sh"
    [ -s "$ROOT$INSIDE/readme-steps.sh" ] || die "README.md has no pi-install block"
    say "running the README's Raspberry Pi steps inside (emulated: about 3 minutes):"
    sed 's/^/    /' "$ROOT$INSIDE/readme-steps.sh" >&2
    PI=4 run_inside /usr/bin/env PIP_NO_INDEX=1 PIP_FIND_LINKS=$INSIDE/wheels PIP_DISABLE_PIP_VERSION_CHECK=1 \
        sh -exc "cd $INSIDE/bundles/rpi4 && . $INSIDE/readme-steps.sh" >"$WORK/readme.log" 2>&1 \
        || { tail -30 "$WORK/readme.log" >&2; die "the README's Raspberry Pi steps failed inside"; }
    PI=4 run_inside /root/edge/bin/pip install -q --no-index --find-links "$INSIDE/wheels" pytest pyopen-wakeword \
        "edge-deploy[text,images]" || die "could not add the test packages inside"
    say "caching the root in $ready"
    rm -f "$CACHE"/ready-*.tar.zst
    tar --zstd -cpf "$ready.part" -C "$ROOT" --numeric-owner --exclude=".$INSIDE" . && mv "$ready.part" "$ready"
}

inside() {
    # runs in the private mount namespace: nothing here needs undoing
    local pi=$1; shift
    local cpu
    case $pi in 4) cpu=cortex-a72 ;; 5) cpu=cortex-a76 ;; *) die "PI must be 4 or 5" ;; esac
    mount -t proc proc "$ROOT/proc"
    # QEMU shows the host's x86 cpuinfo: onnxruntime and LiteRT crash on it, and detection sees x86
    mount --bind "$MACHINES/rpi$pi/proc/cpuinfo" "$ROOT/proc/cpuinfo"
    mount --rbind /dev "$ROOT/dev"
    mount -t tmpfs -o mode=755 tmpfs "$ROOT/run"
    mkdir -p -m 755 "$ROOT/run/sshd"
    mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"
    # A /sys of this namespace's own (a Pi 4 and a Pi 5 may run at once on the same root): the
    # firmware's device tree, which QEMU cannot show, and the CPU lists the runtimes' cpuinfo library
    # reads: the host's (a Pi's 0-3 would make onnxruntime pin threads to CPUs this host may not have).
    mount -t tmpfs -o mode=755 tmpfs "$ROOT/sys"
    mkdir -p "$ROOT/sys/firmware/devicetree/base" "$ROOT/sys/devices/system/cpu"
    cp "$MACHINES/rpi$pi/proc/device-tree/model" "$ROOT/sys/firmware/devicetree/base/model"
    for list in possible present online; do
        cat "/sys/devices/system/cpu/$list" > "$ROOT/sys/devices/system/cpu/$list"
    done
    # QEMU reads QEMU_CPU at every exec from the new program's environment: set for all children
    exec chroot "$ROOT" /usr/bin/env -i QEMU_CPU=$cpu HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}

run_inside() {
    [ -x "$ROOT/usr/bin/python3" ] || die "no root at $ROOT: run 'lane.sh prepare' first"
    unshare --mount --propagation private -- "$HERE/lane.sh" __inside "${PI:-4}" "$@"
}

sshd() {
    local pi=$1 port=$2 keys=$3
    install -d -m 700 "$ROOT/root/.ssh" "$ROOT/etc/ssh/lane"
    install -m 600 "$keys/client_key.pub" "$ROOT/root/.ssh/authorized_keys"
    install -m 600 "$keys/host_key" "$ROOT/etc/ssh/lane/host_key"
    # sshd starts sessions with a fresh environment: SetEnv (one directive, sshd keeps the first)
    # gives QEMU_CPU back to every command it runs.
    PI=$pi run_inside /usr/sbin/sshd -D -e -p "$port" -o ListenAddress=127.0.0.1 -h /etc/ssh/lane/host_key \
        -o PermitRootLogin=prohibit-password -o UsePAM=no -o PasswordAuthentication=no \
        -o "SetEnv=QEMU_CPU=$([ "$pi" = 5 ] && echo cortex-a76 || echo cortex-a72) PATH=/usr/local/bin:/usr/bin:/bin"
}

command=${1:-}
shift || true
case $command in
    prepare)
        if [ "$(id -u)" != 0 ]; then
            [ "${EDGE_REQUIRE_ARM64:-}" = 1 ] && die "the emulated Pi needs root (chroot, mounts, apt)"
            say "skipped: the emulated Pi needs root (chroot, mounts, apt)"
            exit 0
        fi
        started=$(date +%s)
        host_packages
        binfmt
        mkdir -p "$WORK"
        say "exporting the lane's bundles on the host, meanwhile (log: $WORK/host-bundles.log)"
        rm -rf "$WORK/bundles"
        host_bundles &
        exporting=$!
        trap 'kill $exporting 2>/dev/null || true' EXIT
        base_root
        wheels
        wait $exporting || die "exporting the lane's bundles on the host failed"
        ready_root
        say "prepared in $(( $(date +%s) - started )) s"
        ;;
    run) pi=$1; shift; PI=$pi run_inside "$@" ;;
    sshd) sshd "$@" ;;
    __inside) inside "$@" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
