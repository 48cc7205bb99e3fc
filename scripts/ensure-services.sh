#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and NATS with JetStream (127.0.0.1:4222) answer,
# starting them with the commands in docs/operations.md when they are installed but down.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is down: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_port 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi

if ! port_open 4222; then
  if [ -x /usr/sbin/nats-server ]; then
    echo "NATS is down: starting it"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server || true
  fi
  wait_port 4222 || { echo "NATS does not answer on 127.0.0.1:4222" >&2; exit 1; }
fi
echo "PostgreSQL and NATS answer on localhost"
