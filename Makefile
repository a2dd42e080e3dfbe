# openai-proxy: the front door. CMake is the real build; each target here configures one
# build tree under build/ and drives it.
#
#   make                               ./openai-proxy, optimised (build/release)
#   make test                          unit + end-to-end tests through ctest (build/test),
#                                      including the static binary in a chroot (as root)
#   make test-asan                     the same suite under ASan + UBSan (build/asan)
#   make test-bsd-sockets              the same suite over the BSD/macOS sockets (accept +
#                                      fcntl, SO_NOSIGPIPE), built here (build/bsd-sockets)
#   make test-mbedtls                  the same suite on the mbedTLS backend (-DOP_TLS=mbedtls,
#                                      build/mbedtls), including its static binary in a chroot
#                                      (as root; build/mbedtls-static)
#   make fuzz                          each fuzzer for FUZZ_SECONDS (fuzz/run.sh; clang,
#                                      from scripts/deps.sh --fuzz)
#   make dist/linux_amd64/openai-proxy static, stripped release binary (static OpenSSL)
#   make dist/linux_mipsle-small/openai-proxy  the same with a trimmed mbedTLS, at most 1.5 MiB,
#                                      for routers (also mips, armv7, arm64, amd64 -small)
#   make test-small                    each -small binary under its qemu-<cpu>-static: the
#                                      SDK-style checks (tests/small/sdk_checks.py), every e2e
#                                      test for linux_mipsle-small under qemu, and the whole
#                                      suite on linux_amd64-small natively (build/small-e2e)
#   make dist/scf.zip                  cloud-function zip: `main` + `scf_bootstrap`
#   make dist                          every platform this machine can build, and scf.zip
#   make clean
#
# Packages: scripts/deps.sh (Debian/Ubuntu). Variables: JOBS (build parallelism),
# TEST_JOBS (ctest parallelism), FUZZ_SECONDS, STATIC_TEST=0 to leave out the static build
# and its chroot test from `make test` and `make test-mbedtls`.

CMAKE        ?= cmake
CTEST        ?= ctest
JOBS         ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
TEST_JOBS    ?= 2
FUZZ_SECONDS ?= 60
STATIC_TEST  ?= 1

# Release platforms, as <os>_<arch>. `make dist` builds those it can and names the rest.
DIST_PLATFORMS := linux_amd64 linux_arm64 linux_armv7 linux_mipsle darwin_arm64
# The small (mbedTLS) router builds: scripts/dist.sh <os>_<arch>-small.
SMALL_PLATFORMS := linux_mipsle-small linux_mips-small linux_armv7-small linux_arm64-small linux_amd64-small

HOST_OS   := $(shell uname -s | tr A-Z a-z)
HOST_ARCH := $(subst x86_64,amd64,$(subst aarch64,arm64,$(shell uname -m)))

# The static binary that `make test` runs in a chroot (root only: chroot needs it),
# built for the host's own Linux platform. Without it that test reports "skipped".
# `make test-mbedtls` does the same with a static mbedTLS binary.
ifeq ($(HOST_OS)$(STATIC_TEST)$(shell id -u),linux10)
STATIC_BINARY := dist/linux_$(HOST_ARCH)/openai-proxy
MBEDTLS_STATIC_BINARY := build/mbedtls-static/openai-proxy
SMALL_CHROOT := 1
endif

# CMake's own makefiles run under ours; spare the "Entering directory" lines.
MAKEFLAGS += --no-print-directory

# Always ask CMake: it knows what is out of date; make does not.
.PHONY: all test test-asan test-bsd-sockets test-mbedtls test-small fuzz dist clean FORCE
all: openai-proxy

# configure(build dir, cmake args)
configure = $(CMAKE) -S . -B $(1) $(2)

openai-proxy: FORCE
	$(call configure,build/release,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=OFF -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_TLS=openssl)
	$(CMAKE) --build build/release --target openai-proxy -j $(JOBS)
	install -m 755 build/release/openai-proxy $@
	@echo "Built ./$@"

test: $(STATIC_BINARY)
	$(call configure,build/test,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_TLS=openssl \
	  -DOP_STATIC_BINARY=$(if $(STATIC_BINARY),$(abspath $(STATIC_BINARY))))
	$(CMAKE) --build build/test -j $(JOBS)
	$(CTEST) --test-dir build/test --output-on-failure -j $(TEST_JOBS)

test-asan:
	$(call configure,build/asan,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOP_TESTS=ON -DOP_SANITIZE=ON -DOP_STATIC=OFF -DOP_TLS=openssl -DOP_STATIC_BINARY=)
	$(CMAKE) --build build/asan -j $(JOBS)
	UBSAN_OPTIONS=print_stacktrace=1 $(CTEST) --test-dir build/asan --output-on-failure -j $(TEST_JOBS)

# OP_SOCKETS=bsd: the sockets macOS and the BSDs get, on this system's poller.
test-bsd-sockets:
	$(call configure,build/bsd-sockets,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_STATIC_BINARY= -DOP_SOCKETS=bsd -DOP_TLS=openssl)
	$(CMAKE) --build build/bsd-sockets -j $(JOBS)
	$(CTEST) --test-dir build/bsd-sockets --output-on-failure -j $(TEST_JOBS)

# The whole suite again with the other TLS backend: the unit tests of tls.h and every e2e
# test must pass unchanged on it.
test-mbedtls: $(MBEDTLS_STATIC_BINARY)
	$(call configure,build/mbedtls,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_TLS=mbedtls \
	  -DOP_STATIC_BINARY=$(if $(MBEDTLS_STATIC_BINARY),$(abspath $(MBEDTLS_STATIC_BINARY))))
	$(CMAKE) --build build/mbedtls -j $(JOBS)
	$(CTEST) --test-dir build/mbedtls --output-on-failure -j $(TEST_JOBS)

build/mbedtls-static/openai-proxy: FORCE
	$(call configure,build/mbedtls-static,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=OFF -DOP_SANITIZE=OFF -DOP_STATIC=ON -DOP_TLS=mbedtls)
	$(CMAKE) --build build/mbedtls-static --target openai-proxy -j $(JOBS)

# The small router builds, each built (scripts/dist.sh: at most 1.5 MiB) and run under its
# qemu-<cpu>-static through the SDK-style checks (tests/small/run.sh), linux_mipsle-small
# also through every e2e test (SMALL_E2E_QEMU); then the whole suite
# with this machine's own small binary: the unit tests built on the same trimmed mbedTLS,
# every e2e test run against dist/linux_<host arch>-small/openai-proxy (OP_TEST_BINARY),
# the chroot test included (as root). A CPU this machine has no compiler for is named
# as skipped; the host's own small build must succeed.
SMALL_HOST := linux_$(HOST_ARCH)-small
# The CPU whose small binary also runs every e2e test under qemu (~3.5 min under qemu-mipsel).
SMALL_E2E_QEMU ?= linux_mipsle-small
test-small:
	@built=; skipped=; \
	for p in $(SMALL_PLATFORMS); do \
	  JOBS=$(JOBS) scripts/dist.sh $$p; rc=$$?; \
	  case $$rc in 0) built="$$built $$p";; 3) skipped="$$skipped $$p";; *) exit $$rc;; esac; \
	done; \
	case " $$built " in *" $(SMALL_HOST) "*) ;; *) echo "make test-small: $(SMALL_HOST) was not built" >&2; exit 1;; esac; \
	tests/small/run.sh --full $(SMALL_E2E_QEMU) $$built || exit 1; \
	if [ -n "$$skipped" ]; then echo "make test-small: not built on this machine (reasons above):$$skipped"; fi
	$(call configure,build/small-e2e,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_TLS=mbedtls \
	  -DMBEDTLS_ROOT_DIR=$(abspath build/mbedtls-prefix/small-$(HOST_ARCH)) \
	  -DOP_TEST_BINARY=$(abspath dist/$(SMALL_HOST)/openai-proxy) \
	  -DOP_STATIC_BINARY=$(if $(SMALL_CHROOT),$(abspath dist/$(SMALL_HOST)/openai-proxy)))
	$(CMAKE) --build build/small-e2e -j $(JOBS)
	$(CTEST) --test-dir build/small-e2e --output-on-failure -j $(TEST_JOBS)

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS) $(abspath build/fuzz)

# One rule per platform; scripts/dist.sh explains (exit 3) what a platform lacks here.
$(foreach p,$(DIST_PLATFORMS) $(SMALL_PLATFORMS),dist/$(p)/openai-proxy): dist/%/openai-proxy: FORCE
	@JOBS=$(JOBS) scripts/dist.sh $*

# Tencent SCF web function (also Aliyun FC custom runtime): the binary must be called
# `main` next to `scf_bootstrap`; the zip keeps both execute bits.
dist/scf.zip: dist/linux_amd64/openai-proxy scf_bootstrap
	@$(MAKE) _scf_pack

# Packs the linux_amd64 binary already in dist/ (`make dist` has just built it).
.PHONY: _scf_pack
_scf_pack:
	rm -rf build/scf && mkdir -p build/scf
	install -m 755 dist/linux_amd64/openai-proxy build/scf/main
	install -m 755 scf_bootstrap build/scf/scf_bootstrap
	rm -f dist/scf.zip && cd build/scf && zip -q -X ../../dist/scf.zip main scf_bootstrap
	zipinfo dist/scf.zip
	@test "$$(zipinfo dist/scf.zip | grep -cE '^-rwxr-xr-x .* (main|scf_bootstrap)$$')" = 2 || \
	  { echo "dist/scf.zip: main and scf_bootstrap must both be stored executable" >&2; exit 1; }

dist:
	@built=; skipped=; \
	for p in $(DIST_PLATFORMS) $(SMALL_PLATFORMS); do \
	  JOBS=$(JOBS) scripts/dist.sh $$p; rc=$$?; \
	  case $$rc in 0) built="$$built $$p";; 3) skipped="$$skipped $$p";; *) exit $$rc;; esac; \
	done; \
	case " $$built " in \
	  *" linux_amd64 "*) $(MAKE) _scf_pack || exit 1; built="$$built scf.zip";; \
	  *) skipped="$$skipped scf.zip";; esac; \
	echo; echo "make dist: built:$${built:- nothing}"; \
	if [ -n "$$skipped" ]; then echo "make dist: skipped (not buildable on this machine, reasons above):$$skipped"; fi

clean:
	rm -rf build openai-proxy dist/*/ dist/*.zip

FORCE:
