#!/usr/bin/env bash
# register-webhooks.sh URL -- registers the operator's admission webhooks (config/webhook:
# the one that steers owners' replacement pods, and the one that turns evictions into
# migrations) to reach an operator run outside the cluster at URL (https://127.0.0.1:9443)
# instead of through its Service, as `make run` and `make demo` run it. The operator writes
# the CA bundle itself. Uses $KUBECONFIG and the kubectl of hack/build-tools.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
url=${1:?usage: register-webhooks.sh https://127.0.0.1:PORT}
bin=$("$root/hack/build-tools.sh")
for file in mutating_webhook.yaml eviction_webhook.yaml; do
  "$bin/kubectl" create --dry-run=client -o json -f "$root/config/webhook/$file" |
    node -e '
      const c = JSON.parse(require("fs").readFileSync(0, "utf8"));
      for (const w of c.webhooks) w.clientConfig = { url: process.argv[1] + w.clientConfig.service.path };
      process.stdout.write(JSON.stringify(c));
    ' "$url" |
    "$bin/kubectl" apply --server-side --force-conflicts --field-manager=podmigration-local -f - >/dev/null
done
echo "webhooks registered at $url"
