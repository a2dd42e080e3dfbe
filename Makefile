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
#   make test-windows                  the Windows build (mingw-w64, mbedTLS) under Wine: unit
#                                      tests and the end-to-end suite (build/windows;
#                                      scripts/test-windows.sh; packages: deps.sh --windows)
#   make dist/linux_amd64/openai-proxy static, stripped release binary (static OpenSSL)
#   make dist/darwin_arm64/openai-proxy macOS (also darwin_amd64): natively on a Mac of that
#                                      CPU (Homebrew's openssl@3), else cross-built with
#                                      Zig (scripts/deps.sh --darwin); see scripts/dist.sh
#   make sdk-check                     the official OpenAI Node SDK (npm openai v4, fetched into
#                                      build/sdk-node) through the proxy, as directly
#                                      (tests/sdk; OP_BINARY, default ./openai-proxy, built;
#                                      SKIP line without Node or the npm registry)
#   make check-darwin                  both macOS binaries, and the unit tests compiled and
#                                      linked for macOS, checked without a Mac (SKIP line
#                                      without the toolchain)
#   make dist/windows_amd64/openai-proxy.exe  static, stripped Windows build (mingw-w64, mbedTLS)
#   make dist/linux_mipsle-small/openai-proxy  the same with a trimmed mbedTLS, at most 1.5 MiB,
#                                      for routers (also mips, armv7, arm64, amd64 -small)
#   make test-small                    each -small binary under its qemu-<cpu>-static: the
#                                      SDK-style checks (tests/small/sdk_checks.py), every e2e
#                                      test for linux_mipsle-small under qemu, and the whole
#                                      suite on linux_amd64-small natively (build/small-e2e)
#   make dist/scf.zip                  Tencent SCF zip: `main` + `scf_bootstrap`
#   make dist/fc.zip                   Aliyun FC custom-runtime zip: `bootstrap` + `openai-proxy`
#   make dist/openwrt/openai-proxy_<version>-1_<arch>.ipk
#                                      OpenWrt package of a small router binary (dist/README.md)
#   make dist/openwrt                  the OpenWrt packages of every small binary built
#   make dist/systemd                  the systemd unit and its example environment file
#   make dist                          every platform this machine can build, and the above
#   make clean
#
# Packages: scripts/deps.sh (Debian/Ubuntu). Variables: JOBS (build parallelism),
# TEST_JOBS (ctest parallelism), FUZZ_SECONDS, STATIC_TEST=0 to leave out the static build
# and its chroot test from `make test` and `make test-mbedtls`; for the OpenWrt packages,
# OPENWRT_ARCH_<cpu> (the package architecture) and SMALL_BINARY_<cpu> (the binary packed).

CMAKE        ?= cmake
CTEST        ?= ctest
# Extra ctest arguments, e.g. CTEST_FLAGS='--repeat until-pass:2' (what .ci/run gives the
# suites other than `make test`: a test that fails and then passes shows both runs in the log).
CTEST_FLAGS  ?=
JOBS         ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
TEST_JOBS    ?= 2
FUZZ_SECONDS ?= 60
STATIC_TEST  ?= 1

# Release platforms, as <os>_<arch>. `make dist` builds those it can and names the rest.
DIST_PLATFORMS := linux_amd64 linux_arm64 linux_armv7 linux_mipsle darwin_arm64 darwin_amd64 windows_amd64 windows_arm64
POSIX_DIST_PLATFORMS := $(filter-out windows_%,$(DIST_PLATFORMS))
# The small (mbedTLS) router builds: scripts/dist.sh <os>_<arch>-small.
SMALL_PLATFORMS := linux_mipsle-small linux_mips-small linux_armv7-small linux_arm64-small linux_amd64-small

# The project's version (CMakeLists.txt), for package file names and control fields.
VERSION := $(shell grep -o 'openai_proxy VERSION [0-9.]*' CMakeLists.txt | cut -d' ' -f3)

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

# On a Mac, Homebrew's libraries (openssl@3, doctest) are where CMake does not look by
# itself: point it there, unless the caller already did.
ifeq ($(HOST_OS),darwin)
BREW_PREFIX := $(shell brew --prefix 2>/dev/null)
ifneq ($(BREW_PREFIX),)
export CMAKE_PREFIX_PATH ?= $(BREW_PREFIX)
export OPENSSL_ROOT_DIR ?= $(shell brew --prefix openssl@3 2>/dev/null)
endif
endif

# Always ask CMake: it knows what is out of date; make does not.
.PHONY: all test test-asan test-bsd-sockets test-mbedtls test-windows test-small sdk-check check-darwin fuzz dist dist/openwrt dist/systemd clean FORCE
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
	$(CTEST) --test-dir build/test --output-on-failure -j $(TEST_JOBS) $(CTEST_FLAGS)

test-asan:
	$(call configure,build/asan,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOP_TESTS=ON -DOP_SANITIZE=ON -DOP_STATIC=OFF -DOP_TLS=openssl -DOP_STATIC_BINARY=)
	$(CMAKE) --build build/asan -j $(JOBS)
	UBSAN_OPTIONS=print_stacktrace=1 $(CTEST) --test-dir build/asan --output-on-failure -j $(TEST_JOBS) $(CTEST_FLAGS)

# OP_SOCKETS=bsd: the sockets macOS and the BSDs get, on this system's poller.
test-bsd-sockets:
	$(call configure,build/bsd-sockets,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_STATIC_BINARY= -DOP_SOCKETS=bsd -DOP_TLS=openssl)
	$(CMAKE) --build build/bsd-sockets -j $(JOBS)
	$(CTEST) --test-dir build/bsd-sockets --output-on-failure -j $(TEST_JOBS) $(CTEST_FLAGS)

# The whole suite again with the other TLS backend: the unit tests of tls.h and every e2e
# test must pass unchanged on it.
test-mbedtls: $(MBEDTLS_STATIC_BINARY)
	$(call configure,build/mbedtls,-DCMAKE_BUILD_TYPE=Release -DOP_TESTS=ON -DOP_SANITIZE=OFF -DOP_STATIC=OFF -DOP_TLS=mbedtls \
	  -DOP_STATIC_BINARY=$(if $(MBEDTLS_STATIC_BINARY),$(abspath $(MBEDTLS_STATIC_BINARY))))
	$(CMAKE) --build build/mbedtls -j $(JOBS)
	$(CTEST) --test-dir build/mbedtls --output-on-failure -j $(TEST_JOBS) $(CTEST_FLAGS)

# The Windows build, cross-compiled and run under Wine: its unit tests (the poller
# contract on IOCP among them) and every e2e test through tests/windows/wine-run.
test-windows:
	@JOBS=$(JOBS) TEST_JOBS=$(TEST_JOBS) scripts/test-windows.sh

# The official OpenAI Node SDK through the proxy (tests/sdk/run.py): OP_BINARY=<binary> for
# another build (dist/linux_amd64/openai-proxy, a -small one), or the Windows .exe with
# OP_BINARY=tests/windows/wine-run OP_WINE_EXE=<.exe>. Without OP_BINARY, ./openai-proxy is
# built first. The SDK comes from npm (tests/sdk/setup.sh), never committed.
sdk-check: $(if $(OP_BINARY),,openai-proxy)
	@tests/sdk/setup.sh
	@OP_BINARY=$(abspath $(or $(OP_BINARY),openai-proxy)) \
	  $(if $(OP_WINE_EXE),OP_WINE_EXE=$(abspath $(OP_WINE_EXE))) python3 tests/sdk/run.py

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
	$(CTEST) --test-dir build/small-e2e --output-on-failure -j $(TEST_JOBS) $(CTEST_FLAGS)

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS) $(abspath build/fuzz)

check-darwin:
	@JOBS=$(JOBS) scripts/check-darwin.sh

# One rule per platform; scripts/dist.sh explains (exit 3) what a platform lacks here.
$(foreach p,$(POSIX_DIST_PLATFORMS) $(SMALL_PLATFORMS),dist/$(p)/openai-proxy): dist/%/openai-proxy: FORCE
	@JOBS=$(JOBS) scripts/dist.sh $*

dist/windows_amd64/openai-proxy.exe dist/windows_arm64/openai-proxy.exe: dist/%/openai-proxy.exe: FORCE
	@JOBS=$(JOBS) scripts/dist.sh $*

# Tencent SCF web function (Aliyun FC: dist/fc.zip below): the binary must be called
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

# Aliyun Function Compute custom runtime: FC runs /code/bootstrap (packaging/fc/bootstrap),
# which starts the binary on 0.0.0.0:$FC_SERVER_PORT (9000 by default).
dist/fc.zip: dist/linux_amd64/openai-proxy packaging/fc/bootstrap scripts/package.sh
	scripts/package.sh fc dist/linux_amd64/openai-proxy $@

# OpenWrt packages, one per router CPU, of the small (mbedTLS) static binaries. opkg
# installs a package only when its Architecture is one `opkg print-architecture` lists
# on the router: the names below are the usual OpenWrt ones for each CPU (ramips and
# ath79 routers, ipq40xx, filogic/ipq807x, x86_64); override OPENWRT_ARCH_<cpu> to pack
# for another (dist/README.md), and SMALL_BINARY_<cpu> to pack another binary.
OPENWRT_CPUS        := mipsle mips armv7 arm64 amd64
OPENWRT_RELEASE     ?= 1
OPENWRT_ARCH_mipsle ?= mipsel_24kc
OPENWRT_ARCH_mips   ?= mips_24kc
OPENWRT_ARCH_armv7  ?= arm_cortex-a7_neon-vfpv4
OPENWRT_ARCH_arm64  ?= aarch64_cortex-a53
OPENWRT_ARCH_amd64  ?= x86_64
$(foreach c,$(OPENWRT_CPUS),$(eval SMALL_BINARY_$(c) ?= dist/linux_$(c)-small/openai-proxy))
openwrt_ipk = dist/openwrt/openai-proxy_$(VERSION)-$(OPENWRT_RELEASE)_$(OPENWRT_ARCH_$(1)).ipk
# cpu=arch=binary=ipk, one word per CPU, for the shell loops below.
OPENWRT_SET := $(foreach c,$(OPENWRT_CPUS),$(c)=$(OPENWRT_ARCH_$(c))=$(SMALL_BINARY_$(c))=$(call openwrt_ipk,$(c)))
OPENWRT_FILES := packaging/openwrt/files/openai-proxy.init packaging/openwrt/files/openai-proxy.config scripts/package.sh

define openwrt_rule
$(call openwrt_ipk,$(1)): $(SMALL_BINARY_$(1)) $(OPENWRT_FILES)
	scripts/package.sh ipk --cpu $(1) --arch $(OPENWRT_ARCH_$(1)) --version $(VERSION)-$(OPENWRT_RELEASE) $$< $$@
endef
$(foreach c,$(OPENWRT_CPUS),$(eval $(call openwrt_rule,$(c))))

# Packs each small binary that exists (build them with make dist/linux_<cpu>-small/openai-proxy,
# or `make dist`); names the others.
dist/openwrt:
	@built=; skipped=; \
	for t in $(OPENWRT_SET); do \
	  IFS==; set -- $$t; unset IFS; cpu=$$1; bin=$$3; ipk=$$4; \
	  if [ -f "$$bin" ]; then $(MAKE) "$$ipk" || exit 1; built="$$built $$ipk"; \
	  else skipped="$$skipped $$cpu"; echo "dist/openwrt: no $$bin (make $$bin)"; fi; \
	done; \
	echo "dist/openwrt: built:$${built:- nothing}"; \
	if [ -n "$$skipped" ]; then echo "dist/openwrt: skipped, no small binary:$$skipped"; fi

# The systemd unit and its example environment file, beside the binaries
# (packaging/systemd; test_systemd_unit.py runs systemd-analyze verify on them).
dist/systemd:
	install -D -m 644 packaging/systemd/openai-proxy.service dist/systemd/openai-proxy.service
	install -D -m 644 packaging/systemd/openai-proxy.env dist/systemd/openai-proxy.env

# OpenWrt packages are made of the small binaries this run built, or of ones given with
# SMALL_BINARY_<cpu> (or left by an earlier build) when their platform is not in
# DIST_PLATFORMS.
dist:
	@built=; skipped=; \
	for p in $(DIST_PLATFORMS) $(SMALL_PLATFORMS); do \
	  JOBS=$(JOBS) scripts/dist.sh $$p; rc=$$?; \
	  case $$rc in 0) built="$$built $$p";; 3) skipped="$$skipped $$p";; *) exit $$rc;; esac; \
	done; \
	case " $$built " in \
	  *" linux_amd64 "*) $(MAKE) _scf_pack || exit 1; built="$$built scf.zip"; \
	    scripts/package.sh fc dist/linux_amd64/openai-proxy dist/fc.zip || exit 1; built="$$built fc.zip";; \
	  *) skipped="$$skipped scf.zip fc.zip";; esac; \
	for t in $(OPENWRT_SET); do \
	  IFS==; set -- $$t; unset IFS; cpu=$$1; arch=$$2; bin=$$3; ipk=$$4; \
	  case " $(DIST_PLATFORMS) $(SMALL_PLATFORMS) " in *" linux_$$cpu-small "*) \
	    case " $$built " in *" linux_$$cpu-small "*) ok=1;; *) ok=;; esac;; \
	  *) if [ -f "$$bin" ]; then ok=1; else ok=; fi;; esac; \
	  if [ -n "$$ok" ]; then \
	    scripts/package.sh ipk --cpu $$cpu --arch $$arch --version $(VERSION)-$(OPENWRT_RELEASE) "$$bin" "$$ipk" || exit 1; built="$$built $${ipk#dist/}"; \
	  else echo "dist/openwrt: no $$bin for $$cpu (make $$bin)"; skipped="$$skipped openwrt($$cpu)"; fi; \
	done; \
	$(MAKE) dist/systemd >/dev/null || exit 1; built="$$built systemd/"; \
	echo; echo "make dist: built:$${built:- nothing}"; \
	if [ -n "$$skipped" ]; then echo "make dist: skipped (not buildable on this machine, reasons above):$$skipped"; fi

clean:
	rm -rf build openai-proxy dist/*/ dist/*.zip

FORCE:
