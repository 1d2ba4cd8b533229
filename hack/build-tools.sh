#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok), a kstatus checker, an Argo CD health check runner
# and helm from the Go modules pinned in hack/tools/*, once,
# into a cache outside the repository keyed by version. Prints the directory holding them.
#
# KUBEBUILDER_ASSETS, when set, names a directory that already holds the binaries; it is
# used as it is (nothing is built).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/hack/tools"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

modver() { # modver DIR MODULE -> version required by DIR/go.mod
  awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$1/go.mod"
}
k8s_version=$(modver "$tools/kubernetes" k8s.io/kubernetes)
etcd_version=$(modver "$tools/etcd" go.etcd.io/etcd/server/v3)
kwok_version=$(modver "$tools/kwok" sigs.k8s.io/kwok)
helm_version=$(modver "$tools/helm" helm.sh/helm/v3)

cache="${PODMIGRATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podmigration}"
bin="$cache/bin/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version"
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
build() { # build NAME MODULE_DIR PACKAGE [LDFLAGS]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  [[ -x "$bin/$name" ]] && return 0
  echo "building $name ($pkg) ..." >&2
  local start=$SECONDS
  (cd "$dir" && go build -trimpath -tags=selinux,notest -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "built $name in $((SECONDS - start))s" >&2
}

minor=${k8s_version#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
k8s_ldflags="-X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor \
  -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z \
  -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
  -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd "$tools/etcd" go.etcd.io/etcd/server/v3
build kube-apiserver "$tools/kubernetes" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kube-controller-manager "$tools/kubernetes" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler "$tools/kubernetes" k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubectl "$tools/kubernetes" k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
# kstatus: what Flux, kpt and cli-utils make of an object's status (used by the tests).
build kstatus "$tools/kstatus" .
# argocd-health: runs Argo CD health checks in gopher-lua, as Argo CD does (used by the tests).
build argocd-health "$tools/argocd-health" .
# helm: the chart's lint, template, install, upgrade and uninstall tests.
# As helm's Makefile builds it: the Kubernetes version it assumes offline is its client-go's.
helm_k8s=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$tools/helm/go.mod"); helm_k8s_minor=${helm_k8s#v0.}; helm_k8s_minor=${helm_k8s_minor%%.*}
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
for p in lint/rules chartutil; do
  helm_ldflags+=" -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=$helm_k8s_minor"
done
build helm "$tools/helm" helm.sh/helm/v3/cmd/helm "$helm_ldflags"
build kwok "$tools/kwok" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
echo "$bin"
