# make image [VERSION=…] [REVISION=…] [IMAGE=name:tag] [ENGINE=docker|podman] [NODE_IMAGE=…]: the container
# image from the Dockerfile, built by docker (podman when docker is absent); needs a running engine, nothing
# local. Only values given on the make command line count: VERSION and the like are common environment names.
image_arg = $(if $(filter command line,$(origin $(1))),$(2) '$($(1))')

image:
	@bash "$(ROOT)/scripts/image-build.sh" $(call image_arg,VERSION,--version) $(call image_arg,REVISION,--revision) $(call image_arg,IMAGE,--tag) $(call image_arg,ENGINE,--engine) $(call image_arg,NODE_IMAGE,--node-image)
