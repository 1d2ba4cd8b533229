#!/usr/bin/env bash
# Writes one file with everything config/default installs, the operator's image set to
# $1 (for example registry.example.com/podmigration-operator:v0.1.0), to stdout.
#   hack/build-installer.sh IMG > dist/install.yaml            (make build-installer)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
img=${1:?usage: build-installer.sh IMAGE[:TAG|@DIGEST]}
kubectl=${KUBECTL:-$("$root/hack/cluster.sh" bin)/kubectl}

# A throwaway overlay beside config/ (kustomize wants its resources below or beside it).
overlay=$(mktemp -d "$root/config/.installer-XXXXXX")
trap 'rm -rf "$overlay"' EXIT
if [[ $img == *@* ]]; then name=${img%@*}; pin="digest: ${img#*@}"
elif [[ ${img##*/} == *:* ]]; then name=${img%:*}; pin="newTag: ${img##*:}"
else name=$img; pin="newTag: latest"; fi
cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../default]
images:
  - name: podmigration-operator
    newName: $name
    $pin
YAML
"$kubectl" kustomize "$overlay"
