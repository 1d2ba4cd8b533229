#!/usr/bin/env bash
# make run: the operator on this machine against $KUBECONFIG (default: the local control
# plane's), serving its admission webhooks on loopback and registering them by URL, so that
# every mode works as in a cluster: Steer for StatefulSets and Jobs, and evictions of
# opted-in pods (kubectl drain) answered with migrations. On the local control plane it runs
# as the operator's own ServiceAccount identity (bound by config/rbac), so that its own
# evictions are told from a user's. Extra arguments go to the operator.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${WEBHOOK_PORT:-9443}
kubeconfig=${KUBECONFIG:-${CLUSTER_DIR:-$root/.cluster}/kubeconfig}
identity=$kubeconfig
[[ -f "$(dirname "$kubeconfig")/operator.kubeconfig" ]] && identity="$(dirname "$kubeconfig")/operator.kubeconfig"
KUBECONFIG=$kubeconfig hack/register-webhooks.sh "https://127.0.0.1:$port"
exec node dist/main.js --kubeconfig "$identity" --webhook-bind-address "127.0.0.1:$port" "$@"
