# Sourced by ops/test.sh and ops/demo.sh: start Kafka + MariaDB (ops/services.sh) unless
# they already run, export their D1CDC_* variables, and stop them on exit only if this
# script started them — a developer's running services are left alone.
started_services=0
if ! bash ops/services.sh status >/dev/null 2>&1; then
  started_services=1
fi
stop_started_services() { if ((started_services)); then bash ops/services.sh down || true; fi; }
trap stop_started_services EXIT
bash ops/services.sh up
eval "$(bash ops/services.sh env)"
