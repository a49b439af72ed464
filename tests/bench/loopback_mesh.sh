# shellcheck shell=bash
# The by-hand mesh of docs/getting-started.md on loopback, the setup callgrind.sh and idle_rss.sh
# share: a work directory removed on exit (KEEP=1 keeps it), the ports (offsets from BASE, so a
# run does not meet the by-hand mesh), wait_for, the control plane's bootstrap tokens for `web`
# and `hello`, hello's MeshService, and nginx's config as the app. Sourced after setting ROOT,
# BASE and MESH_NAME (the work directory's prefix); the script then starts what it measures.

W=$(mktemp -d "/tmp/weft-$MESH_NAME.XXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
CP=127.0.0.1:$((BASE + 10)) CP_ADMIN=127.0.0.1:$((BASE + 14)) APP=127.0.0.1:$((BASE + 80))
SERVER_IN=127.0.0.1:$((BASE + 6)) SERVER_ADMIN=127.0.0.1:$((BASE + 100))
CLIENT_ADMIN=127.0.0.1:$((BASE + 200)) FORWARD=127.0.0.1:$((BASE + 40))
COLLECTOR=127.0.0.1:$((BASE + 17))

wait_for() { # SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" > /dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "error: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}

cat > "$W/tokens.yaml" << YAML
apiVersion: weft.dev/v1alpha1
kind: BootstrapTokens
tokens:
  - {identity: spiffe://cluster.local/ns/demo/sa/web, token: 7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e}
  - {identity: spiffe://cluster.local/ns/demo/sa/hello, token: 1b3d5f7a9c0e2a4c6e8a0c2e4a6c8e0a}
YAML
cat > "$W/services.yaml" << YAML
apiVersion: weft.dev/v1alpha1
kind: MeshService
metadata: {name: hello, namespace: demo}
spec:
  ports: [{port: 8080, targetPort: $((BASE + 6))}]
  endpoints: [{address: 127.0.0.1, serviceAccount: hello}]
YAML
cat > "$W/nginx.conf" << NGINX
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $W/nginx-body;
  server {
    listen $APP;
    location / { return 200 "hello from nginx\n"; }
    # POST /post: "posted" once nginx has read the whole body (as in tests/bench/matrix.sh).
    location = /post {
      mirror /post-sink; mirror_request_body on;
      root $W/app; error_page 405 =200 \$uri;
    }
    location = /post-sink { internal; return 204; }
    # GET /64k: a 64 KiB file (tests/bench/callgrind.sh GET_64K=1, as pods.sh's get-64k).
    location = /64k { root $W/app; }
  }
}
NGINX
