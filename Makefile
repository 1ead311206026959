# arvados.cluster: set-up, tests, demo and benchmarks.
# `make test` is the whole suite from a fresh machine; each part also has a target of its own.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(abspath .)
BUILD := $(ROOT)/build
VENV := $(ROOT)/.venv
VENV219 := $(ROOT)/.venv-core219
VENV220 := $(ROOT)/.venv-core220
STAGE_ROOT := $(BUILD)/stage
STAGE := $(STAGE_ROOT)/ansible_collections/arvados/cluster
TEST_HOME := $(BUILD)/home
PYTHONS := $(BUILD)/pythons
SERVICES := $(BUILD)/services
PYENV_ROOT ?= $(HOME)/.pyenv

# The main line runs on Python 3.12 where present; 2.19 on the machine's python3.11; 2.20 on Python 3.13.
find_python = $(firstword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1)) $(2))
PY_MAIN := $(call find_python,3.12,$(shell command -v python3))
PY_219 := $(call find_python,3.11,$(shell command -v python3))
PY_220 := $(call find_python,3.13,$(PY_MAIN))
CORE_MAIN := ansible-core>=2.21,<2.22
CORE_219 := ansible-core>=2.19,<2.20
CORE_220 := ansible-core>=2.20,<2.21
DEBIAN_PACKAGES := docker.io docker-registry skopeo busybox-static shellcheck rsync chromium

# Each stage runs through tests/harness/stage.py: its output goes to build/logs/<stage>.log and it prints one line
# (and, when it fails, what failed). `make test` runs every stage even after a failure, then prints one total line
# and fails if any stage failed.
STAGES := sanity units functional integration integration-core220 integration-core219 faults molecule lint changelog-check \
          docs docsite-check build-collection galaxy-importer ee
LOGS := $(BUILD)/logs
RUN_STAGE := python3 $(ROOT)/tests/harness/stage.py --log-dir $(LOGS)
VENV_LINES := $(VENV) $(VENV219) $(VENV220)
SETUP_FILES = $(BUILD)/.deps-$(DEPS_HASH) $(addsuffix /.stamp,$(VENV_LINES)) $(addsuffix /.warnings,$(VENV_LINES))

# ansible-test runs with a private HOME (its caches and the offline pip bootstrap live there).
TEST_ENV := HOME=$(TEST_HOME) ANSIBLE_REMOTE_TMP=$(TEST_HOME)/.ansible/tmp PATH=$(PYTHONS):$$PATH

.PHONY: help test setup setup-steps deps venv venvs stage pythons pip-bootstrap $(STAGES) demo bench clean

help:
	@echo "make demo         ensure an image in Arvados (the bundled emulator unless ARVADOS_API_HOST is set)"
	@echo "make test         the whole test suite (installs what it needs)"
	@echo "make sanity | units | functional | integration | faults | lint | docs | build-collection | bench | bench-lookup"
	@echo "make molecule | ee | bench-role | bench-role-missing | bench-claim | bench-scale | bench-registry | bench-clusters"
	@echo "make integration-core219 | integration-core220 | galaxy-importer | docsite | docsite-check | changelog-check"

test: setup
	@$(RUN_STAGE) forget $(STAGES)
	@for stage in $(STAGES); do $(MAKE) $$stage || true; done
	@$(RUN_STAGE) total $(STAGES)

# ---- set-up (idempotent) ---------------------------------------------------------------------------

# One line when something is to install, its output in build/logs/setup.log; nothing when all is in place.
setup:
	@$(MAKE) -q $(SETUP_FILES) 2>/dev/null || $(RUN_STAGE) run setup -- $(MAKE) setup-steps
setup-steps: deps venvs $(addsuffix /.warnings,$(VENV_LINES))

DEPS_HASH := $(shell echo $(DEBIAN_PACKAGES) | md5sum | cut -c1-8)
deps: $(BUILD)/.deps-$(DEPS_HASH)
$(BUILD)/.deps-%:
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

venv: $(VENV)/.stamp
venvs: $(addsuffix /.stamp,$(VENV_LINES))

$(VENV)/.stamp: requirements.txt test-requirements.txt
	$(PY_MAIN) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r test-requirements.txt '$(CORE_MAIN)'
	@touch $@

# The other lines carry the collection's own requirements too: integration runs their controller's modules.
$(VENV219)/.stamp: requirements.txt
	$(PY_219) -m venv $(VENV219)
	$(VENV219)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV219)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt '$(CORE_219)'
	@touch $@

$(VENV220)/.stamp: requirements.txt
	$(PY_220) -m venv $(VENV220)
	$(VENV220)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(VENV220)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt '$(CORE_220)'
	@touch $@

# The test venvs filter one warning that ansible-core's import causes on every command (see the file).
$(addsuffix /.warnings,$(VENV_LINES)): %/.warnings: tests/harness/test_warnings.pth %/.stamp
	cp $< "$$($*/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/arvados_cluster_test_warnings.pth"
	@touch $@

# ansible-test wants python3.X on PATH for every version it checks; pyenv exposes only one.
pythons:
	@mkdir -p $(PYTHONS)
	@for v in 3.8 3.9 3.10 3.11 3.12 3.13; do \
	  p=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python$$v 2>/dev/null | tail -n 1); \
	  [ -z "$$p" ] || ln -sf "$$p" $(PYTHONS)/python$$v; \
	done

# ansible-test downloads a pip bootstrap script from a host we cannot reach: provide it from a pip wheel.
pip-bootstrap: $(VENV)/.stamp
	@$(VENV)/bin/python tests/harness/pip_bootstrap.py --cache-dir $(TEST_HOME)/.ansible/test/cache \
	  --ansible-test $(VENV)/bin/ansible-test --ansible-test $(VENV219)/bin/ansible-test \
	  --ansible-test $(VENV220)/bin/ansible-test

# ansible-test needs the collection at ansible_collections/arvados/cluster, as a real directory under git.
stage:
	@rm -rf $(STAGE_ROOT) && mkdir -p $(STAGE)
	@git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -C $(STAGE) -xf -
	@cd $(STAGE) && git init -q && git add -A && git -c user.name=stage -c user.email=stage@localhost commit -qm stage

# ---- tests -------------------------------------------------------------------------------------------

# A stage target runs its set-up, then its commands (the target of the same name with a leading _) through the runner.
.PHONY: $(addprefix _,$(STAGES))
$(STAGES):
	@$(RUN_STAGE) run $@ -- $(MAKE) _$@

sanity: setup pythons pip-bootstrap stage
_sanity:
	cd $(STAGE) && $(TEST_ENV) $(VENV)/bin/ansible-test sanity --venv --color no
	cd $(STAGE) && $(TEST_ENV) $(VENV219)/bin/ansible-test sanity --venv --color no
	cd $(STAGE) && $(TEST_ENV) $(VENV220)/bin/ansible-test sanity --venv --color no

units: setup pythons pip-bootstrap stage
_units:
	cd $(STAGE) && $(TEST_ENV) $(VENV)/bin/ansible-test units --venv --color no
	cd $(STAGE) && $(TEST_ENV) $(VENV219)/bin/ansible-test units --venv --color no
	cd $(STAGE) && $(TEST_ENV) $(VENV220)/bin/ansible-test units --venv --color no

functional: setup
_functional:
	$(VENV)/bin/python -m pytest -p no:cacheprovider

# Integration targets reach the emulator, dockerd and registry through integration_config.yml. INTEGRATION_VENV picks
# the ansible-core line (the main one by default), INTEGRATION_TARGETS a subset of the targets (all by default).
INTEGRATION_VENV ?= $(VENV)
INTEGRATION_TARGETS ?=
integration integration-core220 integration-core219: setup stage
_integration:
	@rm -rf $(SERVICES) && mkdir -p $(SERVICES)
	@trap '$(MAKE) -C $(ROOT) services-down' EXIT; \
	$(VENV)/bin/python tests/harness/emulator.py up --data-dir $(SERVICES)/emulator > $(SERVICES)/emulator.json; \
	$(VENV)/bin/python tests/harness/docker_env.py up --state-dir $(SERVICES)/docker > $(SERVICES)/docker.json; \
	$(VENV)/bin/python tests/harness/integration_config.py --emulator $(SERVICES)/emulator.json \
	  --docker $(SERVICES)/docker.json --output $(STAGE)/tests/integration/integration_config.yml; \
	cd $(STAGE) && $(TEST_ENV) $(INTEGRATION_VENV)/bin/ansible-test integration --local --color no -v $(INTEGRATION_TARGETS)

# 2.20 (Python 3.13, the line Arvados sites run) runs every target; 2.19 every target but the module's long option
# matrix (arvados_docker_image), which the other two lines run.
INTEGRATION_219_TARGETS := test_services arvados_docker_image_examples arvados_docker_image_info lookup_arvados_docker_image
_integration-core220:
	$(MAKE) _integration INTEGRATION_VENV=$(VENV220)
_integration-core219:
	$(MAKE) _integration INTEGRATION_VENV=$(VENV219) INTEGRATION_TARGETS='$(INTEGRATION_219_TARGETS)'

# arvados-cwl-runner, whose own image resolution the fault suite runs against what the module stored. A venv of its
# own: cwltool pins packages the test venv holds at other versions.
CWL_VENV := $(BUILD)/venv-cwl
CWL_RUNNER := arvados-cwl-runner==3.2.1
$(CWL_VENV)/.stamp:
	$(PY_MAIN) -m venv $(CWL_VENV)
	$(CWL_VENV)/bin/python -m pip install -q --disable-pip-version-check '$(CWL_RUNNER)'
	@touch $@

# Faults, interruptions, races, bad input and secrets, each through ansible-playbook; services of its own.
faults: setup
_faults: $(CWL_VENV)/.stamp
	CWL_PYTHON=$(CWL_VENV)/bin/python $(VENV)/bin/python -m pytest -p no:cacheprovider --basetemp=$(BUILD)/faults tests/faults

.PHONY: services-down
services-down:
	-@$(VENV)/bin/python tests/harness/docker_env.py down --state-dir $(SERVICES)/docker
	-@$(VENV)/bin/python tests/harness/emulator.py down --data-dir $(SERVICES)/emulator

lint: setup stage
_lint:
	cd $(STAGE) && $(TEST_ENV) ANSIBLE_COLLECTIONS_PATH=$(STAGE_ROOT) $(VENV)/bin/ansible-lint --offline
	cd $(STAGE) && $(VENV)/bin/antsibull-changelog lint

# Documentation: markup lint, and every plugin's ansible-doc page renders.
docs: setup stage
_docs:
	cd $(STAGE) && PATH=$(VENV)/bin:$$PATH ANSIBLE_COLLECTIONS_PATH=$(STAGE_ROOT) $(VENV)/bin/antsibull-docs lint-collection-docs --plugin-docs .
	$(VENV)/bin/python tests/harness/doc_pages.py --collections-path $(STAGE_ROOT) --ansible-doc $(VENV)/bin/ansible-doc

# The docsite under build/docsite: antsibull-docs sphinx-init and collection docs, the guides of docs/docsite, built
# offline (no intersphinx; Sphinx warnings fail it, but for references into Ansible's own docs).
.PHONY: docsite
docsite: setup stage
	$(VENV)/bin/python tests/harness/docsite.py --collections-path $(STAGE_ROOT) --bin-dir $(VENV)/bin \
	  --source $(BUILD)/docsite-src --html $(BUILD)/docsite

# Every page of the docsite in headless Chromium: options, examples, return values and links; screenshots too.
docsite-check: setup stage
_docsite-check: docsite
	$(VENV)/bin/python tests/harness/docsite_check.py --site $(BUILD)/docsite --shots $(BUILD)/docsite-shots \
	  --collections-path $(STAGE_ROOT) --ansible-doc $(VENV)/bin/ansible-doc

# antsibull-changelog lint, and the next release rendered in a temporary copy: every fragment in its section.
changelog-check: setup stage
_changelog-check:
	$(VENV)/bin/python tests/harness/changelog_check.py --collection $(STAGE) --output $(BUILD)/CHANGELOG-dry-run.rst \
	  --antsibull-changelog $(VENV)/bin/antsibull-changelog

build-collection: setup stage
_build-collection:
	@rm -rf $(BUILD)/dist $(BUILD)/installed && mkdir -p $(BUILD)/dist
	cd $(STAGE) && $(VENV)/bin/ansible-galaxy collection build --force --output-path $(BUILD)/dist
	$(VENV)/bin/ansible-galaxy collection install --force -p $(BUILD)/installed $(BUILD)/dist/arvados-cluster-*.tar.gz

# What Galaxy and Automation Hub run on an uploaded collection, on the built tarball, with Galaxy's defaults
# (ansible-doc, ansible-lint); any WARNING or ERROR line fails. It has a venv of its own: it pins attrs, flake8
# and ansible-lint below what the test venv holds.
IMPORTER_VENV := $(BUILD)/venv-importer
GALAXY_IMPORTER := galaxy-importer==0.4.44
$(IMPORTER_VENV)/.stamp:
	$(PY_MAIN) -m venv $(IMPORTER_VENV)
	$(IMPORTER_VENV)/bin/python -m pip install -q --disable-pip-version-check '$(GALAXY_IMPORTER)'
	@touch $@

galaxy-importer: setup stage
_galaxy-importer: $(IMPORTER_VENV)/.stamp _build-collection
	@rm -rf $(BUILD)/galaxy-importer && mkdir -p $(BUILD)/galaxy-importer/home
	cd $(BUILD)/galaxy-importer && HOME=$(BUILD)/galaxy-importer/home PATH=$(IMPORTER_VENV)/bin:$$PATH \
	  $(IMPORTER_VENV)/bin/python -m galaxy_importer.main $(BUILD)/dist/arvados-cluster-*.tar.gz 2>&1 | tee importer.log
	@! grep -E 'WARNING|ERROR' $(BUILD)/galaxy-importer/importer.log

# The docker_images role's molecule scenario (extensions/molecule/default): its prepare step starts the emulator,
# dockerd and registry, its cleanup stops them, and its first step stops what an interrupted run left. Molecule keeps
# that state under HOME: a private one, kept between runs.
MOLECULE_HOME := $(BUILD)/molecule-home
.PHONY: molecule
molecule: setup stage
_molecule:
	@mkdir -p $(MOLECULE_HOME)
	cd $(STAGE) && HOME=$(MOLECULE_HOME) ANSIBLE_COLLECTIONS_PATH=$(STAGE_ROOT) PATH=$(VENV)/bin:$$PATH \
	  MOLECULE_COMMAND_BORDERS=false NO_COLOR=1 $(VENV)/bin/molecule test --scenario-name default

# What ansible-builder takes from the collection for an execution environment, and the build context of
# extensions/ee/execution-environment.yml (building the image itself needs a container runtime and the network).
.PHONY: ee
ee: setup stage
_ee:
	@rm -rf $(BUILD)/ee && mkdir -p $(BUILD)/ee
	$(VENV)/bin/ansible-builder introspect --sanitize --write-pip $(BUILD)/ee/requirements.txt \
	  --write-bindep $(BUILD)/ee/bindep.txt $(STAGE_ROOT)
	grep -q '^arvados-python-client' $(BUILD)/ee/requirements.txt
	grep -q '^python-dxf' $(BUILD)/ee/requirements.txt
	test -s $(BUILD)/ee/bindep.txt
	$(VENV)/bin/ansible-builder create -f $(STAGE)/extensions/ee/execution-environment.yml --context $(BUILD)/ee/context

# ---- demo and benchmarks -------------------------------------------------------------------------------

demo: setup stage
	$(VENV)/bin/python demo/run.py --collections-path $(STAGE_ROOT)

BENCH_SIZE_MB ?= 400
BENCH_ROUNDS ?= 3
# The module against arv-keepdocker on the same emulator and dockerd; writes bench/RESULTS.md.
bench: deps venv stage
	$(VENV)/bin/python bench/module_vs_keepdocker.py --size-mb $(BENCH_SIZE_MB) --rounds $(BENCH_ROUNDS) \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS.md --json $(BUILD)/bench.json

BENCH_TERMS ?= 50
# The lookup's batched reads against list_images_in_arv per term, on one emulator; writes bench/RESULTS-lookup.md.
.PHONY: bench-lookup
bench-lookup: venv stage
	$(VENV)/bin/python bench/lookup_terms.py --terms $(BENCH_TERMS) --rounds $(BENCH_ROUNDS) \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-lookup.md --json $(BUILD)/bench-lookup.json

BENCH_ROLE_IMAGES ?= 20
BENCH_ROLE_ROUNDS ?= 5
# The docker_images role against a shell loop of arv-keepdocker over images all present; writes bench/RESULTS-role.md.
.PHONY: bench-role
bench-role: deps venv stage
	$(VENV)/bin/python bench/role_vs_keepdocker.py --images $(BENCH_ROLE_IMAGES) --rounds $(BENCH_ROLE_ROUNDS) \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-role.md --json $(BUILD)/bench-role.json

BENCH_REGISTRY_ROUNDS ?= 3
BENCH_RSS_SIZES_MB ?= 100,1000
# source: registry against docker pull + arv-keepdocker and skopeo copy + arv-put, from one local registry (the median
# of BENCH_REGISTRY_ROUNDS rounds); no-op re-runs' registry requests; the module's peak RSS at other sizes too (one
# upload each). Writes bench/RESULTS-registry.md.
.PHONY: bench-registry
bench-registry: deps venv stage
	$(VENV)/bin/python bench/registry.py --size-mb $(BENCH_SIZE_MB) --rounds $(BENCH_REGISTRY_ROUNDS) --rss-sizes-mb "$(BENCH_RSS_SIZES_MB)" \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-registry.md --json $(BUILD)/bench-registry.json

BENCH_MISSING_IMAGES ?= 10
BENCH_MISSING_MB ?= 10
BENCH_MISSING_ROUNDS ?= 3
# The docker_images role against a shell loop of arv-keepdocker over images the cluster lacks, each tool its own images;
# writes bench/RESULTS-role-missing.md.
.PHONY: bench-role-missing
bench-role-missing: deps venv stage
	$(VENV)/bin/python bench/role_missing.py --images $(BENCH_MISSING_IMAGES) --size-mb $(BENCH_MISSING_MB) \
	  --rounds $(BENCH_MISSING_ROUNDS) --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-role-missing.md \
	  --json $(BUILD)/bench-role-missing.json

BENCH_CLAIM_MB ?= 20
BENCH_CLAIM_ROUNDS ?= 3
# Two controllers (two HOME folders) ensuring the same image into one project at once; writes bench/RESULTS-claim.md.
.PHONY: bench-claim
bench-claim: deps venv stage
	$(VENV)/bin/python bench/claim_race.py --size-mb $(BENCH_CLAIM_MB) --rounds $(BENCH_CLAIM_ROUNDS) \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-claim.md --json $(BUILD)/bench-claim.json

BENCH_CLUSTERS_MIB ?= 400
BENCH_CLUSTERS_IMAGES ?= 10
BENCH_CLUSTERS_ROUNDS ?= 5
BENCH_CLUSTERS_FLEET_ROUNDS ?= 2
# source: arvados against arv-copy: one large image A -> B, and the example playbook to three clusters against a loop of
# arv-copy; writes bench/RESULTS-clusters.md.
.PHONY: bench-clusters
bench-clusters: deps venv stage
	$(VENV)/bin/python bench/clusters.py --size-mib $(BENCH_CLUSTERS_MIB) --images $(BENCH_CLUSTERS_IMAGES) \
	  --rounds $(BENCH_CLUSTERS_ROUNDS) --fleet-rounds $(BENCH_CLUSTERS_FLEET_ROUNDS) --collections-path $(STAGE_ROOT) \
	  --markdown bench/RESULTS-clusters.md --json $(BUILD)/bench-clusters.json

BENCH_SCALE_SIZES ?= 200,2000,4000
BENCH_SCALE_ROUNDS ?= 3
# arv-keepdocker images, list_images_in_arv, the info module and the lookup of every name, on a fresh emulator per number
# of images; writes bench/RESULTS-scale.md.
.PHONY: bench-scale
bench-scale: venv stage
	$(VENV)/bin/python bench/scale.py --sizes $(BENCH_SCALE_SIZES) --rounds $(BENCH_SCALE_ROUNDS) \
	  --collections-path $(STAGE_ROOT) --markdown bench/RESULTS-scale.md --json $(BUILD)/bench-scale.json

clean:
	-$(MAKE) services-down
	rm -rf $(BUILD)
