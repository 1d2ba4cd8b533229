#!/usr/bin/env bash
# A real, local Kubernetes control plane without containers: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes node-1..node-3 whose pods
# go Pending -> Running -> Ready), all on 127.0.0.1. A default StorageClass provisions
# claims with kube-controller-manager's hostPath provisioner (directories under /tmp), so
# the scheduler's volume binding works as on a real cluster.
#
#   hack/cluster.sh up     start it (idempotent); writes $CLUSTER_DIR/kubeconfig
#   hack/cluster.sh down   stop every process and remove $CLUSTER_DIR
#   hack/cluster.sh status print whether it runs
#
# CLUSTER_DIR defaults to .cluster in the repository. Besides the admin kubeconfig it
# writes operator.kubeconfig: the identity of the operator's ServiceAccount
# (podmigration-system/podmigration-operator), bound only by config/rbac.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
nodes=${CLUSTER_NODES:-node-1 node-2 node-3}
operator_ns=podmigration-system
operator_sa=podmigration-operator
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "[cluster] $*" >&2; }

alive() { [[ -f "$dir/$1.pid" ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

running() {
  [[ -f "$dir/ready" ]] || return 1
  local c
  for c in "${components[@]}"; do alive "$c" || return 1; done
  "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1
}

stop() {
  rm -f "$dir/ready"
  local c i pid
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c=${components[i]}
    [[ -f "$dir/$c.pid" ]] || continue
    pid=$(cat "$dir/$c.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$c.pid"
  done
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

start() { # start NAME ARGS... : runs $bin/NAME detached, logging to $dir/NAME.log
  local name=$1; shift
  setsid "$bin/$name" "$@" >"$dir/$name.log" 2>&1 < /dev/null &
  echo $! >"$dir/$name.pid"
}

wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    local c
    for c in "${components[@]}"; do
      if [[ -f "$dir/$c.pid" ]] && ! alive "$c"; then
        log "$c exited while waiting for $what; last log lines:"
        tail -n 30 "$dir/$c.log" >&2 || true
        return 1
      fi
    done
    if ((SECONDS > deadline)); then
      log "$what did not come up in ${secs}s; last log lines:"
      tail -n 30 "$dir"/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

certs() {
  local p=$dir/pki
  mkdir -p "$p"
  [[ -f "$p/done" ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=podmigration-local-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  issue() { # issue NAME SUBJECT [SAN]
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    local ext=$p/$1.ext
    if [[ -n "${3:-}" ]]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$ext"
    fi
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -days 3650 -extfile "$ext" -out "$p/$1.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=admin"
  issue operator "/O=system:serviceaccounts/O=system:serviceaccounts:$operator_ns/CN=system:serviceaccount:$operator_ns:$operator_sa"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  touch "$p/done"
}

kubeconfig() { # kubeconfig FILE USER
  local p=$dir/pki
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $p/ca.crt
users:
- name: $2
  user:
    client-certificate: $p/$2.crt
    client-key: $p/$2.key
contexts:
- name: $2@local
  context: {cluster: local, user: $2, namespace: default}
current-context: $2@local
EOF
}

up() {
  if running; then
    log "already running ($dir/kubeconfig)"
    return 0
  fi
  stop
  mkdir -p "$dir"
  certs
  if [[ ! -f "$dir/ports" ]]; then
    printf 'etcd_port=%s\netcd_peer_port=%s\napiserver_port=%s\n' \
      "$(free_port)" "$(free_port)" "$(free_port)" >"$dir/ports"
  fi
  # shellcheck disable=SC1091
  source "$dir/ports"
  local p=$dir/pki
  kubeconfig "$dir/kubeconfig" admin
  kubeconfig "$dir/operator.kubeconfig" operator

  start etcd --name=local --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="local=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level=warn
  wait_for etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

  # AUDIT=1 (the benchmark): one audit event per request, to count requests by identity.
  local audit=()
  if [[ -n "${AUDIT:-}" ]]; then
    printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived, ResponseStarted]' \
      'rules:' '- level: Metadata' >"$dir/audit-policy.yaml"
    audit=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" --audit-log-maxsize=0)
  fi
  start kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" "${audit[@]}" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$apiserver_port" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" --authorization-mode=RBAC \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type=none \
    --v=1
  wait_for kube-apiserver 120 "$bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz

  start kube-controller-manager --kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --use-service-account-credentials=false --node-monitor-grace-period=60s \
    --enable-hostpath-provisioner=true --v=1

  start kube-scheduler --kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --v=1

  start kwok --kubeconfig="$dir/kubeconfig" --config="$root/hack/kwok/stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.1.0.0/16

  local k=("$bin/kubectl" --kubeconfig "$dir/kubeconfig")
  "${k[@]}" apply --server-side -k "$root/crds" >/dev/null
  "${k[@]}" create namespace "$operator_ns" --dry-run=client -o yaml | "${k[@]}" apply --server-side -f - >/dev/null
  "${k[@]}" apply --server-side -k "$root/config/rbac" >/dev/null
  "${k[@]}" apply --server-side -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
  local n
  for n in $nodes; do
    "${k[@]}" apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $n
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $n
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "256", memory: 1Ti, pods: "10000"}
  capacity: {cpu: "256", memory: 1Ti, pods: "10000"}
EOF
  done
  "${k[@]}" wait --for=condition=Established crd/podmigrations.migration.ai-storage.io crd/nodedrains.migration.ai-storage.io \
    crd/reclaimpolicies.migration.ai-storage.io --timeout=60s >/dev/null
  "${k[@]}" wait --for=condition=Ready node --all --timeout=60s >/dev/null
  wait_for "default ServiceAccount" 60 "${k[@]}" get serviceaccount default -n default
  touch "$dir/ready"
  log "ready: export KUBECONFIG=$dir/kubeconfig"
}

bin=
[[ "${1:-}" == down ]] || bin=$("$root/hack/build-tools.sh")
case "${1:-}" in
  up) up ;;
  down) stop; rm -rf "$dir"; log "stopped" ;;
  status) if running; then log "running ($dir/kubeconfig)"; else log "not running"; exit 1; fi ;;
  bin) echo "$bin" ;;
  *) echo "usage: $0 up|down|status|bin" >&2; exit 2 ;;
esac
