#!/usr/bin/env bash
# A private RabbitMQ node for tests and benchmarks (issue 20): Debian's rabbitmq-server, run as a user-space node on
# loopback ports with all of its state in one directory, so several can run side by side and none needs the system
# service. The Debian wrappers in /usr/sbin refuse ordinary users; the real scripts in /usr/lib/rabbitmq/bin do not.
#
#   scripts/rabbitmq.sh install                 apt-get install rabbitmq-server if it is missing
#   scripts/rabbitmq.sh start <dir> <port>      start a node (AMQP on 127.0.0.1:<port>), wait until it is up
#   scripts/rabbitmq.sh stop <dir>              stop the node of <dir> (and its private epmd)
#   scripts/rabbitmq.sh ctl <dir> <args...>     rabbitmqctl against the node of <dir>
#
# <dir> holds the node's data (mnesia, streams), logs, Erlang cookie (HOME) and pid file; start again with the same
# <dir> and port and the durable queues and their messages are back (a broker restart). Each node gets its own epmd
# port (AMQP port + 10000) and distribution port (AMQP port + 20000), so nothing is shared with other nodes.
set -euo pipefail

BIN=/usr/lib/rabbitmq/bin

install() {
  if [ -x "$BIN/rabbitmq-server" ]; then return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  # The package's postinst may try to start the system service; a container's policy-rc.d refuses, which is fine.
  apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
  [ -x "$BIN/rabbitmq-server" ] || { echo "rabbitmq.sh: rabbitmq-server did not install" >&2; exit 1; }
}

node_env() {
  local dir=$1 port=$2
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  [ -f "$dir/plugins" ] || echo '[].' >"$dir/plugins"
  echo "$port" >"$dir/port"
  export HOME="$dir/home"
  export RABBITMQ_NODENAME="mesa$port@localhost"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  export RABBITMQ_DIST_PORT=$((port + 20000))
  export ERL_EPMD_PORT=$((port + 10000))
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/rabbit.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/plugins"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
  # Small and quick: no disk-free alarm on a busy CI disk, a modest memory watermark.
  [ -f "$dir/rabbitmq.conf" ] || printf '%s\n' 'disk_free_limit.absolute = 50MB' 'vm_memory_high_watermark.relative = 0.3' \
    'log.console = false' 'log.file.level = warning' >"$dir/rabbitmq.conf"
}

start() {
  local dir=$1 port=$2
  install
  node_env "$dir" "$port"
  # In the foreground of its own session (`-detached` does not come up with these settings), so the shell that
  # started it can go; its pid is kept for the last-resort stop.
  setsid nohup "$BIN/rabbitmq-server" >>"$dir/log/server.out" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  local i
  for i in $(seq 1 120); do
    if "$BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q await_startup --timeout 2 >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "rabbitmq.sh: node $RABBITMQ_NODENAME did not start; see $dir/log" >&2
  tail -n 30 "$dir/log"/*.log >&2 2>/dev/null || true
  exit 1
}

stop() {
  local dir=$1
  [ -f "$dir/port" ] || return 0
  node_env "$dir" "$(cat "$dir/port")"
  "$BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q shutdown --timeout 20 >/dev/null 2>&1 || {
    # Last resort: the pid the node wrote (ours alone, never a broad kill).
    [ -f "$dir/rabbit.pid" ] && kill -9 "$(cat "$dir/rabbit.pid")" 2>/dev/null || true
  }
  # The launcher script exits with the node; wait for it briefly so the port is free when we return.
  if [ -f "$dir/server.pid" ]; then
    local pid i
    pid=$(cat "$dir/server.pid")
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$dir/server.pid"
  fi
  epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

ctl() {
  local dir=$1
  shift
  node_env "$dir" "$(cat "$dir/port")"
  "$BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  ctl) ctl "$@" ;;
  *) echo "usage: $0 install | start <dir> <port> | stop <dir> | ctl <dir> <args...>" >&2; exit 1 ;;
esac
