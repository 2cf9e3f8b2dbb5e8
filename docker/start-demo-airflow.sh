#!/usr/bin/env bash
# The `airflow` service of docker-compose.yaml: wait for the emulated clouds, take their connections
# (AIRFLOW_CONN_AWS_DEFAULT, AIRFLOW_CONN_GCP_WIF_DEFAULT, STORAGE_EMULATOR_HOST, ...), check the chain once with
# `gcp-wif doctor`, then run every Airflow component in this container (`airflow standalone`).
set -euo pipefail
info="${GCP_WIF_EMULATOR_INFO:-/run/gcp-wif/emulator.json}"
for _ in $(seq 120); do
  [ -s "$info" ] && break
  sleep 1
done
[ -s "$info" ] || { echo "the emulated clouds did not write $info" >&2; exit 1; }
eval "$(python "$(dirname "$0")/emulator_env.py" "$info")"
gcp-wif doctor --conn-id gcp_wif_default || echo "gcp-wif doctor failed: see above; Airflow starts anyway" >&2
exec airflow standalone
