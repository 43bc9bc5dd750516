#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite. On the project's
# machines they already run; on a bare Debian machine they are installed and started here.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "[services] installing PostgreSQL"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
if port_open 5432; then
  # trust auth for local test connections, and the `test` database
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
    sleep 1
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test' || true
fi

if ! port_open 6379; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "[services] installing Redis"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/baoxue-test.log
  for _ in $(seq 1 10); do port_open 6379 && break; sleep 1; done
fi
port_open 5432 && echo "[services] PostgreSQL ready" || echo "[services] PostgreSQL NOT reachable"
port_open 6379 && echo "[services] Redis ready" || echo "[services] Redis NOT reachable"
