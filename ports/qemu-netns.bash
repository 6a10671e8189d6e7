# Sourced by ports/qemu-*/serve for `--netns NAME [--wire-socket DIR]`: the firmware on a
# TAP device inside a network namespace the script creates and deletes, instead of QEMU's
# user-mode network (../qemu-serve.bash). The caller's QEMU command names the network
# backend `n0`; this file adds `-netdev ...,id=n0`.
#
# The namespace holds one TAP device, `tap0`, whose kernel side is 10.0.2.2/24; the
# firmware keeps its fixed address, 10.0.2.15 (the addresses QEMU's user network gives its
# guest, so the firmware is the same for both). Nothing outside the namespace can reach
# it nor be reached from it: programs talk to it with `ip netns exec NAME ...`. TCP and
# UDP both reach the firmware this way, with no forward in between.
#
# The contract: `listening on 10.0.2.15:7` on stdout once the firmware has echoed a probe
# byte; SIGTERM or SIGINT stop QEMU, delete the namespace, and the script exits 0. Bad
# input (not root, the namespace exists already, a missing tool) is one line on stderr and
# a non-zero exit, with nothing created.
#
# With `--wire-socket DIR` QEMU's NIC is a Unix datagram socket instead
# (`-netdev dgram`, QEMU at DIR/qemu.sock sending to DIR/wire.sock), and something else
# (tests/src/bin/wire.rs, the impaired wire) relays its frames to and from tap0.

netns_address=10.0.2.15
netns_host=10.0.2.2

# Sets `netns_name` and `netns_wire` from the arguments, or exits with one line: 2 for
# usage, 1 when the namespace cannot be served from here (see netns_check).
netns_args() {
    if ! { [ $# -eq 2 ] || { [ $# -eq 4 ] && [ "$3" = --wire-socket ]; }; }; then
        echo "usage: serve --netns NAME [--wire-socket DIR] (a namespace serve creates, with the firmware at $netns_address:7)" >&2
        exit 2
    fi
    netns_name=$2
    netns_wire=${4:-}
    netns_check "$netns_name"
}

# Exits with one line unless a namespace NAME may be created and served from here.
netns_check() {
    local name=$1
    if ! [[ $name =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
        echo "serve: invalid namespace name '$name': letters, digits, '.', '_' and '-'" >&2
        exit 2
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "serve: --netns needs root (network namespaces and TAP devices); without it, serve PORT uses QEMU's user network" >&2
        exit 1
    fi
    if ! command -v ip >/dev/null; then
        echo "serve: ip not found (apt-get install iproute2)" >&2
        exit 1
    fi
    if [ -e "/run/netns/$name" ]; then
        echo "serve: network namespace '$name' exists already; serve creates its own" >&2
        exit 1
    fi
}

# True when the firmware echoes a byte on a fresh connection from inside the namespace.
netns_answers() {
    timeout 2 ip netns exec "$1" bash -c '
        exec 3<>"/dev/tcp/$1/7" || exit 1
        printf "?" >&3
        IFS= read -r -t 1 -n 1 reply <&3 && [ "$reply" = "?" ]' _ "$netns_address" 2>/dev/null
}

# netns_serve ELF QEMU-COMMAND...: creates namespace `netns_name` and its TAP, runs QEMU
# inside it with backend n0 on the TAP (or on `netns_wire`'s socket when set), announces
# the firmware once it answers, and on SIGTERM/SIGINT (or QEMU's exit) stops QEMU and
# deletes the namespace. Exits 0 on a signal, else QEMU's status.
netns_serve() {
    local name=$netns_name wire_dir=$netns_wire elf=$1 qemu status=0 stopping=0 i netdev
    shift
    ip netns add "$name"
    # From here on the namespace is ours: whatever happens, it goes.
    trap 'ip netns delete "$name" 2>/dev/null || true' EXIT
    trap 'stopping=1; [ -n "${qemu:-}" ] && kill -TERM "$qemu" 2>/dev/null' TERM INT
    ip -n "$name" link set lo up
    ip -n "$name" tuntap add dev tap0 mode tap
    ip -n "$name" addr add "$netns_host/24" dev tap0
    ip -n "$name" link set tap0 up
    if [ -n "$wire_dir" ]; then
        netdev="dgram,id=n0,local.type=unix,local.path=$wire_dir/qemu.sock,remote.type=unix,remote.path=$wire_dir/wire.sock"
    else
        netdev="tap,id=n0,ifname=tap0,script=no,downscript=no"
    fi
    local decode=(cat)
    command -v defmt-print >/dev/null && decode=(defmt-print -e "$elf")
    # QEMU dies with this script (--pdeathsig), even if the script is killed outright and
    # cannot stop it.
    ip netns exec "$name" setpriv --pdeathsig TERM "$@" -netdev "$netdev" -net "nic,model=lan9118,netdev=n0" \
        -kernel "$elf" </dev/null > >("${decode[@]}" >&2) &
    qemu=$!
    (
        for ((i = 0; i < serve_ready_within * 10; i++)); do
            kill -0 "$qemu" 2>/dev/null || exit 0
            if netns_answers "$name"; then
                echo "listening on $netns_address:7"
                exit 0
            fi
            sleep 0.1
        done
        echo "serve: the firmware did not answer on $netns_address:7 within ${serve_ready_within}s; stopping QEMU" >&2
        kill -TERM "$qemu" 2>/dev/null || true
    ) &
    # `wait` returns early when a trapped signal arrives: wait again for QEMU to exit.
    wait "$qemu" || status=$?
    while kill -0 "$qemu" 2>/dev/null; do
        wait "$qemu" || status=$?
    done
    if [ "$stopping" = 1 ]; then
        exit 0
    fi
    exit "$status"
}
