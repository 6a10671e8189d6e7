# Sourced by ports/qemu-*/serve PORT: what serving a firmware under QEMU to the host means,
# whatever the board. The caller builds its firmware, then hands its ELF and its QEMU
# command line to `serve_exec`.
#
# The contract: `listening on 127.0.0.1:PORT` on stdout only once the firmware has echoed
# a probe; the firmware's defmt log on stderr, decoded by defmt-print when it is installed
# (`cargo install defmt-print`); SIGTERM or SIGINT stop QEMU, and the script exits 0.
#
# QEMU's user-mode network always runs with restrict=on: the guest reaches nothing outside
# QEMU, only what comes in through the forward bound to 127.0.0.1 (`serve_netdev`). UDP is
# not forwarded: in restricted mode QEMU's user network (libslirp) drops every UDP
# datagram the guest sends, echoes of forwarded ones included, so a firmware's UDP echo
# cannot be reached from the host this way (the Cortex-M4 loopback self-test checks it
# inside QEMU instead).

# How long the firmware may take to boot and answer before the script gives up.
serve_ready_within=60

# Sets `port` from the arguments, or exits 2 with a one-line reason.
serve_port() {
    if [ $# -ne 1 ]; then
        echo "usage: serve PORT (the TCP port on 127.0.0.1 to forward to the firmware's port 7)" >&2
        exit 2
    fi
    port=$1
    if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
        echo "serve: invalid port '$port': 1 to 65535" >&2
        exit 2
    fi
    port=$((10#$port))
}

# Exits 1 unless command $1 exists; $2 names the Debian package that has it.
serve_need() {
    if ! command -v "$1" >/dev/null; then
        echo "serve: $1 not found (apt-get install $2)" >&2
        exit 1
    fi
}

# QEMU's user network with the one forward, as a -netdev value with id $1.
serve_netdev() {
    echo "user,id=$1,restrict=on,hostfwd=tcp:127.0.0.1:$port-:7"
}

# True when the firmware echoes a byte on a fresh connection. A bare connect proves
# nothing: QEMU accepts on the host side before it tries the guest.
serve_answers() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "?" >&3
        IFS= read -r -t 1 -n 1 reply <&3 && [ "$reply" = "?" ]' _ "$port" 2>/dev/null
}

# True while process $1 runs (an exited one not yet reaped by our caller is a zombie).
serve_alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

# Runs beside QEMU (which takes over the script's PID): announces the address once the
# firmware answers; gives up quietly if QEMU is gone (it said why on stderr), and stops a
# QEMU whose firmware never answers, so that the script fails rather than hangs.
serve_announce() {
    local qemu=$1 i
    for ((i = 0; i < serve_ready_within * 10; i++)); do
        serve_alive "$qemu" || return 0
        if serve_answers; then
            echo "listening on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    echo "serve: the firmware did not answer on 127.0.0.1:$port within ${serve_ready_within}s; stopping QEMU" >&2
    kill -KILL "$qemu" 2>/dev/null || true
}

# serve_exec ELF QEMU-COMMAND...: becomes QEMU, whose stdout (the firmware's defmt frames)
# goes through the decoder to stderr.
#
# exec: QEMU gets this PID, so SIGTERM and SIGINT reach it directly and it exits 0, and a
# caller that kills the PID kills QEMU. The command must leave the terminal alone (no
# monitor, stdin not read), so that Ctrl-C is a SIGINT.
serve_exec() {
    local elf=$1 decode
    shift
    serve_announce $$ &
    if command -v defmt-print >/dev/null; then
        decode=(defmt-print -e "$elf")
    else
        echo "serve: defmt-print not installed (cargo install defmt-print): the log is not shown" >&2
        decode=(cat)
    fi
    exec "$@" </dev/null > >("${decode[@]}" >&2)
}
