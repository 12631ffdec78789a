#!/usr/bin/env bash
# The cluster of deploy/compose.yaml on 127.0.0.1, without Docker: one redis-server, three
# `switchboard serve` nodes and HAProxy configured from deploy/haproxy.cfg (docs/deployment.md).
#
#   scripts/cluster-loopback.sh up       # start everything, wait until it serves, print the URLs
#   scripts/cluster-loopback.sh status   # what runs, each node's /readyz, HAProxy's view
#   scripts/cluster-loopback.sh down     # SIGTERM everything and wait for it to exit
#
# Settings (environment):
#   SWITCHBOARD_BIN        the binary (default .build/debug/switchboard)
#   CLUSTER_CONFIG         node configuration (default deploy/switchboard.yaml); the script sets
#                          SWITCHBOARD_LISTEN, _ADMIN, _REDIS, _NODE_ID and _NODE_TTL per node,
#                          any other SWITCHBOARD_* variable passes through to every node
#   CLUSTER_DIR            pids, logs, generated haproxy.cfg, HAProxy's runtime API socket
#                          haproxy.sock (default ${TMPDIR:-/tmp}/switchboard-cluster)
#   CLUSTER_REDIS_PORT     6390
#   CLUSTER_NODE_PORTS     "18081 18082 18083"   WebSocket ports of node-1..3
#   CLUSTER_ADMIN_PORTS    "19091 19092 19093"   admin ports of node-1..3
#   CLUSTER_HAPROXY_PORT   18080                 ws://127.0.0.1:18080/ws
#   CLUSTER_STATS_PORT     18404                 http://127.0.0.1:18404/
#   CLUSTER_NODE_TTL       10                    SWITCHBOARD_NODE_TTL
#   CLUSTER_TIMEOUT        60    seconds `up` waits for everything to serve; past it, it stops
#                                all it started and fails
#   CLUSTER_STOP_TIMEOUT   40    seconds `down` waits after SIGTERM (a drain takes up to
#                                drainTimeout, 30 s); what is still running then gets SIGKILL
#   CLUSTER_STANDALONE=1   nodes without SWITCHBOARD_REDIS, each with its own session table:
#                          for trying the routing with a build that has no cluster mode
#
# Stop one node as `docker compose stop` would:  kill -TERM "$(cat "$CLUSTER_DIR/node-2.pid")"
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${SWITCHBOARD_BIN:-$root/.build/debug/switchboard}
config=${CLUSTER_CONFIG:-$root/deploy/switchboard.yaml}
haproxy_template=$root/deploy/haproxy.cfg
dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/switchboard-cluster}
redis_port=${CLUSTER_REDIS_PORT:-6390}
read -r -a node_ports <<<"${CLUSTER_NODE_PORTS:-18081 18082 18083}"
read -r -a admin_ports <<<"${CLUSTER_ADMIN_PORTS:-19091 19092 19093}"
haproxy_port=${CLUSTER_HAPROXY_PORT:-18080}
stats_port=${CLUSTER_STATS_PORT:-18404}
node_ttl=${CLUSTER_NODE_TTL:-10}
timeout=${CLUSTER_TIMEOUT:-60}
stop_timeout=${CLUSTER_STOP_TIMEOUT:-40}
standalone=${CLUSTER_STANDALONE:-0}
nodes=(1 2 3)

die() { echo "cluster-loopback: $*" >&2; exit 1; }

check_settings() {
    [ ${#node_ports[@]} -eq 3 ] || die "CLUSTER_NODE_PORTS must name 3 ports, got '${node_ports[*]}'"
    [ ${#admin_ports[@]} -eq 3 ] || die "CLUSTER_ADMIN_PORTS must name 3 ports, got '${admin_ports[*]}'"
    local p
    for p in "$redis_port" "${node_ports[@]}" "${admin_ports[@]}" "$haproxy_port" "$stats_port" \
             "$timeout" "$stop_timeout"; do
        [[ $p =~ ^[0-9]+$ ]] || die "not a number: '$p'"
    done
}

# The components, in start order; each has DIR/NAME.pid, DIR/NAME.started and DIR/NAME.log.
components() { echo redis; for n in "${nodes[@]}"; do echo "node-$n"; done; echo haproxy; }

started_at() { ps -o lstart= -p "$1" 2>/dev/null; }

# The pid of a component that is running, or nothing. A pid file is trusted only while the
# process it names has the start time recorded with it: pids are reused.
running_pid() {
    local file=$dir/$1.pid pid
    [ -f "$file" ] && [ -f "$dir/$1.started" ] || return 0
    pid=$(cat "$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [ "$(started_at "$pid")" = "$(cat "$dir/$1.started")" ] || return 0
    # An exited child of this script stays a zombie until the script ends: not running.
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] || echo "$pid"
    return 0
}

# Signals a component: its process group (each is started as a session leader, so a wrapper
# script and what it runs go together), or the process alone if it is not a group leader.
signal() {
    local sig=$1 pid=$2
    if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
        kill "-$sig" -- "-$pid" 2>/dev/null || true
    else
        kill "-$sig" "$pid" 2>/dev/null || true
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() {  # URL -> the HTTP status, 000 when nothing answers
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# Starts a component in its own session (a closed terminal's SIGHUP would reload a node, and
# stop Redis), with standard output and error in its log.
start() {
    local name=$1; shift
    setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/$name.pid"
    started_at "$pid" >"$dir/$name.started"
}

tail_log() {
    echo "--- last lines of $dir/$1.log" >&2
    tail -n 20 "$dir/$1.log" >&2 || true
}

# Fails `up`: says why, shows the log, stops what was started.
fail_up() {
    local name=$1 why=$2
    echo "cluster-loopback: $name: $why" >&2
    tail_log "$name"
    echo "cluster-loopback: stopping what was started" >&2
    stop_all >&2 || true
    exit 1
}

deadline=0
wait_until() {  # NAME WHAT COMMAND... : polls COMMAND until it succeeds or the deadline passes
    local name=$1 what=$2; shift 2
    while ! "$@"; do
        [ -n "$(running_pid "$name")" ] || fail_up "$name" "exited before $what"
        [ "$SECONDS" -lt "$deadline" ] || fail_up "$name" "not $what after ${timeout}s (CLUSTER_TIMEOUT)"
        sleep 0.2
    done
}

redis_ready() { [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
node_ready() { [ "$(http_code "http://127.0.0.1:$1/readyz")" = 200 ]; }

# HAProxy's view of the backend's servers, from its stats CSV: "node-N,STATUS,LAST_CHECK"
# (UP,L7OK: its last GET /readyz answered 200; DOWN,L7STS: it answered 503; L4CON: refused).
haproxy_servers() {
    curl -s --max-time 2 "http://127.0.0.1:$stats_port/;csv" 2>/dev/null |
        awk -F, '$1 == "switchboard" && $2 ~ /^node-/ { print $2 "," $18 "," $37 }'
}
# Servers start UP before their first check: wait for a check that passed on each.
haproxy_all_up() { [ "$(haproxy_servers | grep -c ',UP,L7OK$')" -eq 3 ]; }

# deploy/haproxy.cfg with the compose names replaced by loopback addresses. Every substitution
# must happen exactly once: a template that changed shape stops here, not at run time.
generate_haproxy_cfg() {
    local out=$dir/haproxy.cfg n args=()
    args+=(-e "s/^\([[:space:]]*\)bind :8080\$/\1bind 127.0.0.1:$haproxy_port/")
    args+=(-e "s/^\([[:space:]]*\)bind :8404\$/\1bind 127.0.0.1:$stats_port/")
    for n in "${nodes[@]}"; do
        args+=(-e "s/^\([[:space:]]*\)server node-$n switchboard-$n:8080 check port 9090\$/\1server node-$n 127.0.0.1:${node_ports[n-1]} check port ${admin_ports[n-1]}/")
    done
    # Loopback addresses need no DNS: drop docker's resolvers section and its use.
    args+=(-e '/^resolvers dns$/,/^$/d' -e 's/ resolvers dns$//')
    sed "${args[@]}" "$haproxy_template" >"$out"
    local expect=("bind 127.0.0.1:$haproxy_port" "bind 127.0.0.1:$stats_port")
    for n in "${nodes[@]}"; do
        expect+=("server node-$n 127.0.0.1:${node_ports[n-1]} check port ${admin_ports[n-1]}")
    done
    local line
    for line in "${expect[@]}"; do
        [ "$(grep -c -x "[[:space:]]*$line" "$out")" -eq 1 ] ||
            die "$haproxy_template: no line to turn into '$line' (keep its bind and server lines as they are)"
    done
    local left
    left=$(grep -n -v '^[[:space:]]*#' "$out" | grep -E 'switchboard-[0-9]|resolvers|bind :' || true)
    [ -z "$left" ] || die "$haproxy_template: lines left unsubstituted in $out: $(echo "$left" | tr '\n' ' ')"
    # A runtime API socket, on loopback only: echo "show stat" | socat stdio DIR/haproxy.sock
    printf 'global\n    stats socket %s mode 600 level admin\n' "$dir/haproxy.sock" >"$dir/haproxy-local.cfg"
    haproxy -c -q -f "$out" -f "$dir/haproxy-local.cfg" || die "generated $out does not pass haproxy -c"
}

cmd_up() {
    check_settings
    local tool
    for tool in redis-server redis-cli haproxy curl setsid sed awk; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    [ -x "$bin" ] || die "no switchboard binary at $bin (build it: swift build --product switchboard, or set SWITCHBOARD_BIN)"
    [ -f "$config" ] || die "no node configuration at $config"
    mkdir -p "$dir"
    local name
    for name in $(components); do
        [ -z "$(running_pid "$name")" ] || die "$name is already running (pid $(running_pid "$name")); run: $0 down"
    done
    local p
    for p in "$redis_port" "${node_ports[@]}" "${admin_ports[@]}" "$haproxy_port" "$stats_port"; do
        ! port_in_use "$p" || die "port $p on 127.0.0.1 is in use (set the CLUSTER_*_PORT variables)"
    done
    rm -f "$dir"/*.pid "$dir"/*.started "$dir"/*.log
    generate_haproxy_cfg
    deadline=$((SECONDS + timeout))

    mkdir -p "$dir/redis"
    start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir/redis" --logfile ""
    wait_until redis "answering PING on port $redis_port" redis_ready

    local n
    for n in "${nodes[@]}"; do
        if [ "$standalone" = 1 ]; then
            start "node-$n" env -u SWITCHBOARD_REDIS \
                SWITCHBOARD_LISTEN="127.0.0.1:${node_ports[n-1]}" \
                SWITCHBOARD_ADMIN="127.0.0.1:${admin_ports[n-1]}" \
                SWITCHBOARD_PROXY_PROTOCOL=true \
                SWITCHBOARD_NODE_ID="node-$n" \
                "$bin" serve --config "$config"
        else
            start "node-$n" env \
                SWITCHBOARD_LISTEN="127.0.0.1:${node_ports[n-1]}" \
                SWITCHBOARD_ADMIN="127.0.0.1:${admin_ports[n-1]}" \
                SWITCHBOARD_REDIS="redis://127.0.0.1:$redis_port/0" \
                SWITCHBOARD_PROXY_PROTOCOL=true \
                SWITCHBOARD_NODE_ID="node-$n" \
                SWITCHBOARD_NODE_TTL="$node_ttl" \
                "$bin" serve --config "$config"
        fi
    done
    start haproxy haproxy -f "$dir/haproxy.cfg" -f "$dir/haproxy-local.cfg"

    for n in "${nodes[@]}"; do
        wait_until "node-$n" "ready (GET /readyz 200 on port ${admin_ports[n-1]})" node_ready "${admin_ports[n-1]}"
    done
    wait_until haproxy "seeing node-1..3 UP (stats http://127.0.0.1:$stats_port/)" haproxy_all_up

    cat <<EOF
Switchboard cluster up on loopback (state in $dir)
  WebSocket through HAProxy:  ws://127.0.0.1:$haproxy_port/ws
  HAProxy stats:              http://127.0.0.1:$stats_port/   (CSV: ;csv, Prometheus: /metrics)
  HAProxy runtime API:        $dir/haproxy.sock   (echo "show stat" | socat stdio UNIX:$dir/haproxy.sock)
  node-1:  ws://127.0.0.1:${node_ports[0]}/ws   admin http://127.0.0.1:${admin_ports[0]}
  node-2:  ws://127.0.0.1:${node_ports[1]}/ws   admin http://127.0.0.1:${admin_ports[1]}
  node-3:  ws://127.0.0.1:${node_ports[2]}/ws   admin http://127.0.0.1:${admin_ports[2]}
  Redis:   redis://127.0.0.1:$redis_port/0$([ "$standalone" = 1 ] && echo "   (not used: CLUSTER_STANDALONE=1)")
Stop: $0 down
EOF
}

# SIGTERM to every component, nodes and HAProxy first and Redis last (a draining node still
# talks to its store); waits up to CLUSTER_STOP_TIMEOUT, then SIGKILLs what is left.
stop_all() {
    local group name pid left until
    for group in "haproxy node-1 node-2 node-3" "redis"; do
        left=()
        for name in $group; do
            pid=$(running_pid "$name")
            [ -n "$pid" ] || continue
            signal TERM "$pid"
            left+=("$name")
        done
        until=$((SECONDS + stop_timeout))
        while [ ${#left[@]} -gt 0 ]; do
            local still=()
            for name in "${left[@]}"; do
                [ -z "$(running_pid "$name")" ] || still+=("$name")
            done
            left=("${still[@]+"${still[@]}"}")
            [ ${#left[@]} -gt 0 ] || break
            if [ "$SECONDS" -ge "$until" ]; then
                for name in "${left[@]}"; do
                    pid=$(running_pid "$name")
                    [ -z "$pid" ] && continue
                    echo "cluster-loopback: $name (pid $pid) still running after ${stop_timeout}s: SIGKILL" >&2
                    signal KILL "$pid"
                done
                sleep 0.2
                break
            fi
            sleep 0.2
        done
    done
    for name in $(components); do
        [ -z "$(running_pid "$name")" ] || { echo "cluster-loopback: $name is still running" >&2; return 1; }
        rm -f "$dir/$name.pid" "$dir/$name.started"
    done
}

cmd_down() {
    check_settings
    if [ ! -d "$dir" ]; then
        echo "nothing to stop ($dir does not exist)"
        return 0
    fi
    stop_all
    echo "stopped (logs kept in $dir)"
}

cmd_status() {
    check_settings
    local ok=0 name pid n code
    for name in $(components); do
        pid=$(running_pid "$name")
        if [ -n "$pid" ]; then
            printf '%-8s running (pid %s)' "$name" "$pid"
        else
            printf '%-8s stopped' "$name"
            ok=1
        fi
        case $name in
            redis)
                if redis_ready; then printf ', PING ok on %s' "$redis_port"; else printf ', no PONG on %s' "$redis_port"; ok=1; fi ;;
            node-*)
                n=${name#node-}
                code=$(http_code "http://127.0.0.1:${admin_ports[n-1]}/readyz")
                printf ', /readyz %s' "$code"
                [ "$code" = 200 ] || ok=1 ;;
            haproxy)
                if [ -n "$pid" ]; then
                    printf ', servers: %s' "$(haproxy_servers | tr '\n' ' ')"
                    haproxy_all_up || ok=1
                fi ;;
        esac
        printf '\n'
    done
    return "$ok"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
