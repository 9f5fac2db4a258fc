# SPDX-License-Identifier: GPL-2.0
# Out-of-tree build of pvpass.ko against the patched kernel build (KDIR).
#   make                 build the module (KDIR defaults to the cached build)
#   make clippy          the same through clippy (make check fails on its warnings)
#   make demo            install everything, build, run the demo (README)
#   make check           build what is stale and run every test (README)
#   make bench           netperf: pvpass vs vhost-net vs QEMU virtio-net (README, bench/run.sh)
#   make bench-nic       wire <-> guest through one igb: pvpass pools vs igb + bridge + vhost-net (bench/nic.sh)
KDIR ?= $(shell PVPASS_QUIET=1 ./scripts/kernel.sh --print-dir 2>/dev/null)
KMAKE := LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc HOSTRUSTC=/usr/bin/rustc BINDGEN=/usr/local/bin/bindgen

all: module

module:
	@test -n "$(KDIR)" || { echo "no kernel build: run scripts/setup.sh"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KMAKE) modules

# The module through clippy (kernel Rust's lints, as `make CLIPPY=1` in the tree).
clippy:
	@test -n "$(KDIR)" || { echo "no kernel build: run scripts/setup.sh"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KMAKE) CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KMAKE) clean

demo:
	./scripts/demo.sh

check:
	./scripts/test.sh

bench:
	./bench/run.sh

bench-nic:
	./bench/nic.sh

.PHONY: all module clippy clean demo check bench bench-nic
