# PodMigration operator. `make help` lists the targets.
SHELL := /usr/bin/env bash
IMG ?= podmigration-operator:dev
CLUSTER_DIR ?= $(CURDIR)/.cluster
KUBECONFIG ?= $(CLUSTER_DIR)/kubeconfig
export CLUSTER_DIR
# Recipes that run Node.js run the one the image ships (the Dockerfile's major), pinned in
# hack/node.sh: the machine's own if its major matches, otherwise fetched once. Targets that
# need no Node.js (help, tools, cluster-up, ...) never fetch it.
NODE = PATH="$$(hack/node.sh):$$PATH"

.PHONY: help demo test test-unit verify bench build tools cluster-up cluster-down run deploy undeploy build-installer helm-lint docker-build docker-push clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json
	$(NODE) npm ci --no-audit --no-fund
	touch $@

demo: node_modules/.installed ## Start the local control plane, migrate a sample AI pod from node-1 to node-2, then drain node-1 with kubectl drain: its Deployment never without a Ready pod
	$(NODE) hack/demo.sh

test: node_modules/.installed ## Run every test (unit + integration on a real local control plane)
	$(NODE) npx tsc -p tsconfig.jest.json --noEmit
	$(NODE) npx jest --json --outputFile=.jest-results.json
	@$(NODE) node -e 'const r=require("./.jest-results.json"); console.log(`$${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests} skipped`)'

verify: node_modules/.installed ## No cluster: types, ESLint, Prettier, and the unit tests (among them the CRD against types.ts, the layers, the README's reasons)
	$(NODE) npx tsc -p tsconfig.jest.json --noEmit
	$(NODE) npx eslint .
	$(NODE) npx prettier --check "src/**/*.ts" "test/**/*.ts" "*.js" "*.mjs"
	$(NODE) npx jest --selectProjects unit

# make bench ARGS='--n 100 --breakdown': those options alone (ARGS=--help lists them). BENCH_N or
# BENCH_MEMORY set but empty: no runs of that kind.
BENCH_ARGS = --n "$${BENCH_N-1,100,1000}" --drain "$${BENCH_DRAIN-100,500}" --memory "$${BENCH_MEMORY-1000,5000,10000}"

bench: build ## Operator vs a floor on a local control plane of its own (BENCH_N=1,100,1000; BENCH_DRAIN=100,500 pods drained; BENCH_MEMORY=1000,5000,10000 stored records; or ARGS='...')
	$(NODE) npx tsc -p tsconfig.bench.json
	$(NODE) node dist/bench/test/bench/main.js $(or $(ARGS),$(BENCH_ARGS))

test-unit: node_modules/.installed ## Run the unit tests only
	$(NODE) npx jest --selectProjects unit

build: node_modules/.installed ## Compile TypeScript to dist/
	$(NODE) npx tsc -p tsconfig.json

tools: ## Build (once, cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm
	hack/build-tools.sh

cluster-up: ## Start etcd + kube-apiserver + kube-controller-manager + kwok on 127.0.0.1 (idempotent)
	hack/cluster.sh up

cluster-down: ## Stop the local control plane and remove its state
	hack/cluster.sh down

run: build ## Run the operator against $$KUBECONFIG (default .cluster/kubeconfig), its webhooks on 127.0.0.1:$$WEBHOOK_PORT (9443), registered by URL
	$(NODE) hack/run.sh

build-installer: ## Write dist/install.yaml: everything config/default installs, in one file, with image $$IMG
	@mkdir -p dist
	hack/build-installer.sh "$(IMG)" > dist/install.yaml
	@echo "wrote dist/install.yaml (image $(IMG))"

deploy: build-installer ## Install the operator, image $$IMG, into the cluster of $$KUBECONFIG
	kubectl --kubeconfig "$(KUBECONFIG)" apply --server-side -f dist/install.yaml

undeploy: ## Remove the operator (the CRD and so every PodMigration too)
	kubectl --kubeconfig "$(KUBECONFIG)" delete -k config/default --ignore-not-found

helm-lint: ## Lint the Helm chart with the pinned helm (built by make tools)
	"$$(hack/build-tools.sh)/helm" lint charts/podmigration-operator --strict

docker-build: ## Build the operator image $$IMG
	docker build -t $(IMG) .

docker-push: ## Push the operator image $$IMG
	docker push $(IMG)

clean: ## Remove build output
	rm -rf dist coverage
