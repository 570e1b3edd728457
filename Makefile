# netmon developer entry points. Every target first runs scripts/bootstrap.sh, which installs what a
# fresh Debian machine lacks (apt packages, Node 24, node_modules) and skips whatever is already done.
#
#   make test ARGS="packages/core --reporter=verbose"    extra arguments for vitest
#   make run CONFIG=configs/examples/replay.yaml          run that pipeline file instead of the default
#   make run CONFIG="base.yaml node.yaml"                 several files, merged in order
#   make run NETMON_ARGS="--log-level debug"              extra arguments for `netmon run`

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
BOOTSTRAP := bash "$(ROOT)/scripts/bootstrap.sh"

ARGS ?=
NETMON_ARGS ?=
# Only from the make command line: a CONFIG variable some other tool exported in the shell is not ours.
ifneq ($(origin CONFIG),command line)
CONFIG := configs/default.yaml
endif

.DEFAULT_GOAL := help
.PHONY: help build run test lint clean image deploy

help:
	@echo 'netmon - make targets (each sets up what it needs first; re-runs skip finished steps):'
	@echo '  make build   install what is missing (apt packages, Node 24, node_modules) and build (addon, tsc -b, the bundle)'
	@echo '  make run     build, then start the agent: bin/netmon run --config $$CONFIG $$NETMON_ARGS'
	@echo '              (CONFIG=configs/default.yaml unless given, e.g. make run CONFIG=configs/examples/replay.yaml)'
	@echo '  make test    build, then run the whole test suite (npm test = vitest run); ARGS="..." go to vitest'
	@echo '  make lint    npm run lint (biome + type check)'
	@echo '  make image   the container image netmon:VERSION (docker, or podman; VERSION= REVISION= IMAGE= ENGINE= NODE_IMAGE=)'
	@echo '  make deploy  regenerate deploy/ (plain manifests, dashboard) from charts/netmon with its default values'
	@echo '  make clean   remove build output (packages/*/dist, *.tsbuildinfo); keeps node_modules and .tools'
	@echo '  make help    this list'

build:
	@$(BOOTSTRAP)

run:
	@$(BOOTSTRAP) -- "$(ROOT)/bin/netmon" run --config $(CONFIG) $(NETMON_ARGS)

test:
	@$(BOOTSTRAP) -- npm test -- $(ARGS)

lint:
	@$(BOOTSTRAP) --no-build -- npm run lint

# make image [VERSION=…] [REVISION=…] [IMAGE=name:tag] [ENGINE=docker|podman] [NODE_IMAGE=…]: the container
# image from the Dockerfile, built by docker (podman when docker is absent); needs a running engine, nothing
# local. Only values given on the make command line count: VERSION and the like are common environment names.
image_arg = $(if $(filter command line,$(origin $(1))),$(2) '$($(1))')

image:
	@bash "$(ROOT)/scripts/image-build.sh" $(call image_arg,VERSION,--version) $(call image_arg,REVISION,--revision) $(call image_arg,IMAGE,--tag) $(call image_arg,ENGINE,--engine) $(call image_arg,NODE_IMAGE,--node-image)

deploy:
	@$(BOOTSTRAP) --no-build -- node test/chart/render-deploy.mjs

clean:
	rm -rf "$(ROOT)"/packages/*/dist
	find "$(ROOT)" \( -name node_modules -o -name .tools -o -name .git \) -prune -o -name '*.tsbuildinfo' -type f -exec rm -f {} +
