#!/usr/bin/env bash
# Local Kafka (KRaft) + MariaDB for d1cdc's integration tests, without Docker.
#
#   ops/services.sh up | down | status | env
#   eval "$(ops/services.sh env)"
#
# Kafka is Apache's own 4.1.1 jars from Maven Central (fetched once with the machine's
# Maven, via ops/kafka/pom.xml) run as a plain `java kafka.Kafka`; MariaDB is Debian's
# package, run as our own mariadbd with a private data dir, so neither touches system
# services and `down` + `rm -rf .services` gives a clean slate.
#
# Env: D1CDC_SERVICES_DIR (default <repo>/.services), D1CDC_CACHE_DIR (jar cache,
# default ~/.cache/d1cdc), D1CDC_KAFKA_PORT (9092), D1CDC_KAFKA_CONTROLLER_PORT (9093),
# D1CDC_MYSQL_PORT (3306).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPS_KAFKA="$REPO/ops/kafka"
SVC="${D1CDC_SERVICES_DIR:-$REPO/.services}"
KAFKA_VERSION=4.1.1
KAFKA_LIBS="${D1CDC_CACHE_DIR:-$HOME/.cache/d1cdc}/kafka-$KAFKA_VERSION/libs"
KAFKA_PORT="${D1CDC_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${D1CDC_KAFKA_CONTROLLER_PORT:-9093}"
MYSQL_PORT="${D1CDC_MYSQL_PORT:-3306}"
DB_USER=d1cdc DB_PASS=d1cdc-local-pw DB_NAME=d1cdc

KDIR="$SVC/kafka"   KPID="$SVC/kafka/kafka.pid"
MDIR="$SVC/mariadb" MPID="$SVC/mariadb/mariadb.pid" MCNF="$SVC/mariadb/my.cnf"
MSOCK="$SVC/mariadb/mariadb.sock"

log() { echo "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# A pid file only counts if the process is alive AND is what we started (pids get reused).
pid_of() { # file pattern
  local pid
  [[ -s $1 ]] || return 1
  pid="$(tr -dc 0-9 <"$1")"
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_pid() { # name pid: SIGTERM, bounded wait, then SIGKILL
  local name=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || { log "$name: stopped"; return 0; }; sleep 0.5; done
  log "$name: did not stop within 30 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- kafka
kafka_java() { # run a Kafka CLI class quietly, with the tools' stderr-only logging
  java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$OPS_KAFKA/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_fetch() {
  # The marker is written only after a complete copy, so an interrupted fetch is redone.
  [[ -f $KAFKA_LIBS/.complete ]] && return 0
  command -v java >/dev/null && command -v mvn >/dev/null || {
    log "kafka: installing java + maven (apt)…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless maven >/dev/null
  }
  log "kafka: fetching jars for $KAFKA_VERSION from Maven Central…"
  local tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  # Maven's output (ANSI noise even with -q -B) goes to a file, shown only on failure.
  mvn -q -B -Dstyle.color=never -f "$OPS_KAFKA/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1 ||
    { cat "$tmp.log" >&2; die "kafka: maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"; }
  rm -rf "$KAFKA_LIBS" "$tmp.log"; mv "$tmp" "$KAFKA_LIBS"; touch "$KAFKA_LIBS/.complete"
}

kafka_up() {
  if pid="$(pid_of "$KPID" kafka.Kafka)"; then log "kafka: already running (pid $pid, 127.0.0.1:$KAFKA_PORT)"; return 0; fi
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "kafka: port $p is taken by another process (set D1CDC_KAFKA_PORT / D1CDC_KAFKA_CONTROLLER_PORT)"
  done
  kafka_fetch
  mkdir -p "$KDIR/data"
  # Rendered on every start so port overrides apply; the format step below runs only once.
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
    -e "s|@LOG_DIRS@|$KDIR/data|g" "$OPS_KAFKA/server.properties.in" >"$KDIR/server.properties"
  if [[ ! -f $KDIR/data/meta.properties ]]; then
    # --standalone: this node is the whole controller quorum (dynamic quorum, KIP-853).
    # Note: the controller endpoint is recorded at format time; changing the controller
    # port later needs `down` + rm -rf "$KDIR".
    log "kafka: formatting KRaft storage…"
    local cid; cid="$(kafka_java kafka.tools.StorageTool random-uuid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KDIR/server.properties" --standalone >"$KDIR/format.log" 2>&1 ||
      { cat "$KDIR/format.log" >&2; die "kafka: storage format failed"; }
  fi
  log "kafka: starting…"
  # setsid: own session, so killing the caller's process group (CI step, terminal) leaves it up.
  setsid nohup java -Xmx512m -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KDIR" -Dlog4j2.configurationFile="$OPS_KAFKA/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KDIR/server.properties" >"$KDIR/kafka.out" 2>&1 </dev/null &
  local kpid=$!
  echo "$kpid" >"$KPID"
  # An open port is not readiness (the broker listens before it has metadata), so the
  # probe is a real admin round-trip: list topics, with short client timeouts.
  printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n' >"$KDIR/probe.properties"
  local deadline=$((SECONDS + 90))
  while :; do
    # kill -0, not pid_of: right after `&` the child may not have exec'ed java yet, so its
    # command line is still this script's (a race that failed a fresh CI run once).
    kill -0 "$kpid" 2>/dev/null || {
      tail -n 30 "$KDIR/server.log" "$KDIR/kafka.out" >&2 2>/dev/null || true; die "kafka: process exited during startup"; }
    if port_open "$KAFKA_PORT" && kafka_java org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$KDIR/probe.properties" --list >/dev/null 2>&1; then
      break
    fi
    ((SECONDS < deadline)) || {
      tail -n 30 "$KDIR/server.log" >&2 2>/dev/null || true; die "kafka: not answering metadata requests after 90 s (log: $KDIR/server.log)"; }
    sleep 1
  done
  local ver; ver="$(grep -o 'Kafka version: [^ ]*' "$KDIR/server.log" | tail -n 1 | cut -d' ' -f3)"
  log "kafka: up on 127.0.0.1:$KAFKA_PORT (${ver:-unknown version}), pid $(cat "$KPID")"
}

# ---------------------------------------------------------------- mariadb
MYSQLD=mariadbd
mariadb_install() {
  # openssl makes the TLS test's throwaway CA (tests/tls_mariadb.py).
  { command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]]; } && command -v openssl >/dev/null &&
    { export PATH="$PATH:/usr/sbin"; return 0; }
  log "mariadb: installing mariadb-server + mariadb-client + openssl (apt)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client openssl >/dev/null
  export PATH="$PATH:/usr/sbin"
  # Debian's postinst may have started the system instance on 3306; ours must own it.
  service mariadb stop >/dev/null 2>&1 || true
}

mariadb_sql() { mariadb --defaults-file="$MCNF" -u"$(id -un)" "$@"; }

mariadb_up() {
  if pid="$(pid_of "$MPID" $MYSQLD)"; then
    log "mariadb: already running (pid $pid, 127.0.0.1:$MYSQL_PORT)"
  else
    mariadb_install
    if port_open "$MYSQL_PORT" && [[ -s /run/mysqld/mysqld.pid ]]; then
      # The Debian system service holds the port (its pid file is in /run/mysqld); stop it.
      log "mariadb: port $MYSQL_PORT is held by the system mariadb service, stopping it…"
      service mariadb stop >/dev/null 2>&1 || true; sleep 1
    fi
    port_open "$MYSQL_PORT" && die "mariadb: port $MYSQL_PORT is taken by another process (stop it or set D1CDC_MYSQL_PORT)"
    mkdir -p "$MDIR"
    # Our own option file, used via --defaults-file so /etc/mysql/* never applies.
    # [client] lets the mariadb/mariadb-admin calls below find the private socket.
    cat >"$MCNF" <<EOF
[mysqld]
user=$(id -un)
datadir=$MDIR/data
socket=$MSOCK
pid-file=$MPID
log-error=$MDIR/mariadb.err
bind-address=127.0.0.1
port=$MYSQL_PORT
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
sql_mode=STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE
default-time-zone=+00:00
max_connections=500
innodb_buffer_pool_size=256M
# test data only: trade crash durability for speed
innodb_flush_log_at_trx_commit=2
# A row binlog for the optional binlog reverse source (producers/reverse_binlog.py): full
# before/after images, and full row metadata (column names, signedness, charsets: BLOB vs
# TEXT). Written on every start, so an existing data dir picks it up at its next start.
server_id=1
log_bin=mariadb-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
max_binlog_size=64M
binlog_expire_logs_seconds=86400
[client]
socket=$MSOCK
EOF
    if [[ ! -d $MDIR/data/mysql ]]; then
      log "mariadb: initialising data dir…"
      # root and the invoking OS user get unix_socket auth, so no bootstrap password exists.
      mariadb-install-db --defaults-file="$MCNF" --user="$(id -un)" --skip-test-db \
        --auth-root-authentication-method=socket >"$MDIR/install.log" 2>&1 ||
        { tail -n 30 "$MDIR/install.log" >&2; die "mariadb: mariadb-install-db failed"; }
    fi
    log "mariadb: starting…"
    setsid nohup $MYSQLD --defaults-file="$MCNF" >>"$MDIR/mariadb.out" 2>&1 </dev/null &
    local pid=$! deadline=$((SECONDS + 60))
    until mariadb-admin --defaults-file="$MCNF" -u"$(id -un)" --connect-timeout=2 ping >/dev/null 2>&1; do
      kill -0 "$pid" 2>/dev/null || { tail -n 30 "$MDIR/mariadb.err" >&2 || true; die "mariadb: mariadbd exited during startup"; }
      ((SECONDS < deadline)) || { tail -n 30 "$MDIR/mariadb.err" >&2 || true; die "mariadb: no answer after 60 s"; }
      sleep 0.5
    done
  fi
  # Idempotent, so re-running `up` also repairs a dropped user or database. Both host
  # forms exist because with skip-name-resolve TCP is 127.0.0.1 and the socket is localhost.
  mariadb_sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost';
-- Included in ALL, named for the binlog reverse source: what a production user needs.
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '$DB_USER'@'127.0.0.1';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '$DB_USER'@'localhost';
SQL
  log "mariadb: up on 127.0.0.1:$MYSQL_PORT ($(mariadb_sql -N -e 'select version()')), pid $(cat "$MPID")"
}

# ---------------------------------------------------------------- commands
ensure_gitignore() { # the data dir must never be committed
  local gi="$REPO/.gitignore" l
  for l in .services/ .venv/ __pycache__/ '*.egg-info/' .mypy_cache/ .ruff_cache/ .pytest_cache/; do
    grep -qxF -- "$l" "$gi" 2>/dev/null || echo "$l" >>"$gi"
  done
}

cmd_up() {
  ensure_gitignore
  mkdir -p "$SVC"
  kafka_up
  mariadb_up
}

cmd_down() {
  local pid
  if pid="$(pid_of "$KPID" kafka.Kafka)"; then log "kafka: stopping pid $pid…"; stop_pid kafka "$pid"; else log "kafka: not running"; fi
  rm -f "$KPID"
  # mariadbd removes its own pid file on clean shutdown
  if pid="$(pid_of "$MPID" $MYSQLD)"; then log "mariadb: stopping pid $pid…"; stop_pid mariadb "$pid"; else log "mariadb: not running"; fi
}

cmd_status() {
  local rc=0 pid
  if pid="$(pid_of "$KPID" kafka.Kafka)"; then echo "kafka: running pid $pid 127.0.0.1:$KAFKA_PORT"
  else echo "kafka: stopped 127.0.0.1:$KAFKA_PORT"; rc=1; fi
  if pid="$(pid_of "$MPID" $MYSQLD)"; then echo "mariadb: running pid $pid 127.0.0.1:$MYSQL_PORT"
  else echo "mariadb: stopped 127.0.0.1:$MYSQL_PORT"; rc=1; fi
  return $rc
}

cmd_env() {
  echo "export D1CDC_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
  echo "export D1CDC_TARGET_URL=mysql+pymysql://$DB_USER:$DB_PASS@127.0.0.1:$MYSQL_PORT/$DB_NAME"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
