#!/usr/bin/env bash
# Runs a command with AWS pointed at a moto server on loopback, which speaks the DynamoDB
# (and SES v2) wire protocols. When AWS_ENDPOINT_URL is already set, that endpoint is used
# and no server is started. The server is stopped when the command ends or on Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

export AWS_REGION=${AWS_REGION:-us-east-1}
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  exec "$@"
fi
# moto accepts any credentials; these only keep the SDK from looking for real ones.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}

mkdir -p "$root/.local"
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/.venv/bin/python" "$root/infra/moto_server.py" -H 127.0.0.1 -p "$port" >"$root/.local/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 100); do
  if curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto failed to start; see .local/moto.log" >&2; exit 1
  fi
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
# For `make ops` against this stack (`make dev` names the file; tests do not).
if [ -n "${MOTO_ENDPOINT_FILE:-}" ]; then echo "$AWS_ENDPOINT_URL" >"$MOTO_ENDPOINT_FILE"; fi
echo "moto listening on $AWS_ENDPOINT_URL (log: .local/moto.log)" >&2
"$@"
