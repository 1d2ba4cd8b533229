#!/usr/bin/env bash
# The operator's main job, end to end, on the local control plane: start the cluster,
# create an AI-style pod on node-1 (two running containers, one finished), start the
# operator, apply config/samples/podmigration.yaml, show the phases as they advance, and
# print the result. Then the drain: a single-replica inference Deployment on node-1, opted
# in to migrate on eviction, and `kubectl drain node-1`, watched at every change the API
# server makes: it is never without a Ready pod.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CLUSTER_DIR=${CLUSTER_DIR:-$root/.cluster}
hack/cluster.sh up
bin=$(hack/cluster.sh bin)
export KUBECONFIG=$CLUSTER_DIR/kubeconfig
k() { "$bin/kubectl" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

npx tsc -p tsconfig.json

say "Starting over: removing an earlier run of the demo, if any"
# (an interrupted earlier run may have left the operator's cleanup finalizer behind)
k patch podmigration move-tensorflow --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
k delete podmigration move-tensorflow --ignore-not-found --wait=true >/dev/null
k delete pvc -l migration.ai-storage.io/migration=move-tensorflow --ignore-not-found --wait=false >/dev/null
k delete pod -l migration.ai-storage.io/migration=move-tensorflow --ignore-not-found --grace-period=0 --force >/dev/null 2>&1 || true
k delete pod tensorflow-pod --ignore-not-found --grace-period=0 --force >/dev/null 2>&1 || true
k delete deployment inference --ignore-not-found --wait=true >/dev/null
for pm in $(k get podmigrations -l migration.ai-storage.io/created-by=eviction -o name); do
  k patch "$pm" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  k delete "$pm" --ignore-not-found >/dev/null
done
k uncordon node-1 >/dev/null

say "Creating the AI training pod on node-1"
k apply -f config/samples/ai-training-pod.yaml
k wait --for=jsonpath='{.status.phase}'=Running pod/tensorflow-pod --timeout=60s >/dev/null
k get pod tensorflow-pod -o wide
k get pod tensorflow-pod -o jsonpath='{range .status.containerStatuses[*]}  {.name}: {.state}{"\n"}{end}'

say "Starting the operator (as its own ServiceAccount identity, bound by config/rbac), its webhooks on loopback"
port=${WEBHOOK_PORT:-9443}
hack/register-webhooks.sh "https://127.0.0.1:$port"
node dist/main.js --kubeconfig "$CLUSTER_DIR/operator.kubeconfig" --webhook-bind-address "127.0.0.1:$port" >"$CLUSTER_DIR/operator.log" 2>&1 &
operator=$!
watcher=
cleanup() {
  [[ -n "$watcher" ]] && kill "$watcher" 2>/dev/null || true
  kill "$operator" 2>/dev/null || true
}
trap cleanup EXIT
echo "operator pid $operator, logs in $CLUSTER_DIR/operator.log"

say "kubectl apply -f config/samples/podmigration.yaml"
k apply -f config/samples/podmigration.yaml

say "kubectl get podmigrations -w"
"$bin/kubectl" get podmigrations -w &
watcher=$!
for _ in $(seq 600); do
  phase=$(k get podmigration move-tensorflow -o jsonpath='{.status.phase}')
  [[ "$phase" == Completed || "$phase" == Failed ]] && break
  sleep 0.2
done
sleep 0.5
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
watcher=

say "Result"
k get podmigration move-tensorflow -o wide
k get pods -o wide
echo
k get podmigration move-tensorflow -o jsonpath='phase:          {.status.phase} {.status.reason}
target pod:     {.status.targetPod.name} on {.status.targetPod.node}
containers:     {range .status.containers[*]}{.name}={.state}(migrated={.migrated}) {end}
checkpoint PVC: {.status.checkpointPVC}
requests:       original cpu {.status.resources.original.cpu} memory {.status.resources.original.memory} -> optimized cpu {.status.resources.optimized.cpu} memory {.status.resources.optimized.memory}
saved:          cpu {.status.resources.savings.cpu}, memory {.status.resources.savings.memory} (basis: {.status.resources.savings.basis})
usage:          {.status.resources.usage.message}
duration:       {.status.durationSeconds}s
'

say "Events (kubectl describe podmigration move-tensorflow)"
k describe podmigration move-tensorflow | sed -n '/^Events:/,$p'
[[ "$phase" == Completed ]]

say "A single-replica inference Deployment on node-1, opted in (migration.ai-storage.io/on-eviction: migrate)"
k apply -f config/samples/inference-deployment.yaml
k rollout status deployment/inference --timeout=90s
k get pods -l app=inference -o wide

say "kubectl drain node-1 --ignore-daemonsets --force (the Deployment's pods at every change, and how many are Ready)"
# One line per change the API server makes to the Deployment's pods, and how many are Ready then.
watch_ready() {
  local -A ready=()
  local event pod node is_ready deleting least='' n v
  while read -r event pod node is_ready deleting; do
    if [[ $event == DELETED ]]; then unset "ready[$pod]"; else
      ready[$pod]=0
      [[ $is_ready == True && $deleting == "<none>" ]] && ready[$pod]=1
    fi
    n=0
    for v in "${ready[@]}"; do n=$((n + v)); done
    [[ -z $least || $n -lt $least ]] && least=$n
    printf '  %-9s %-38s on %-7s Ready pods now: %d (fewest so far: %d)\n' "$event" "$pod" "$node" "$n" "$least"
  done
}
"$bin/kubectl" get pods -l app=inference -w --output-watch-events --no-headers \
  -o 'custom-columns=EVENT:.type,POD:.object.metadata.name,NODE:.object.spec.nodeName,READY:.object.status.conditions[?(@.type=="Ready")].status,DELETING:.object.metadata.deletionTimestamp' |
  watch_ready &
watcher=$!
sleep 1
k drain node-1 --ignore-daemonsets --force --timeout=120s
sleep 1
kill "$watcher" 2>/dev/null || true
pkill -f "get pods -l app=inference -w" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
watcher=
k get podmigrations -l migration.ai-storage.io/created-by=eviction -o wide
k uncordon node-1 >/dev/null
echo
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG; 'make cluster-down' stops it."
echo "Drain a node declaratively: kubectl apply -f config/samples/nodedrain.yaml; kubectl get nodedrains -w"
