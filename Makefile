# edgefetch: one C binary that fetches, verifies and hands over container images.
# Plain make; honours CC, PKG_CONFIG, CFLAGS, LDFLAGS, BUILDDIR, PREFIX, DESTDIR.

CC         ?= cc
PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr
DESTDIR    ?=
BUILDDIR   ?= build/native
CFLAGS     ?= -O2 -g
VERSION    := 0.1.0

WARN   := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
# libarchive is dlopen'ed when an archive is written (registry/output/archive.c),
# libmicrohttpd when the store is served (registry/serve/serve.c).
DLPKGS := libarchive libmicrohttpd
PKGS   := libcurl libssl libcrypto jansson libzstd
# The Debian package that provides each pkg-config name, for the message below.
DEB_libcurl    := libcurl4-openssl-dev
DEB_libssl     := libssl-dev
DEB_libcrypto  := libssl-dev
DEB_jansson    := libjansson-dev
DEB_libarchive := libarchive-dev
DEB_libzstd    := libzstd-dev
DEB_libmicrohttpd := libmicrohttpd-dev
DEB_cmocka     := libcmocka-dev
# Asked of pkg-config only when a compile needs them, once, so that the
# targets which first install the packages (demo, check, bench) work on a
# machine that has none yet; a build without them stops with one line.
missing = $(strip $(if $(shell command -v $(firstword $(PKG_CONFIG))),,pkg-config) \
  $(foreach p,$(1),$(if $(shell $(PKG_CONFIG) --exists $(p) 2>/dev/null && echo y),,$(DEB_$(p)))))
need = $(if $(call missing,$(1)),$(error missing build packages: $(sort $(call missing,$(1))); tests/deps.sh installs them (as root)))
DEPCFLAGS = $(eval DEPCFLAGS := $(call need,$(PKGS) $(DLPKGS))$(shell $(PKG_CONFIG) --cflags $(PKGS) $(DLPKGS)))$(DEPCFLAGS)
DEPLIBS   = $(eval DEPLIBS := $(shell $(PKG_CONFIG) --libs $(PKGS)) -ldl)$(DEPLIBS)
TESTLIBS  = $(eval TESTLIBS := $(call need,cmocka)$(shell $(PKG_CONFIG) --libs cmocka))$(TESTLIBS)
ALLCFLAGS  = -std=c11 -D_GNU_SOURCE -DEF_VERSION=\"$(VERSION)\" $(WARN) $(HARDEN) $(DEPCFLAGS) $(CFLAGS) -MMD -MP
ALLLDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)

LIB_SRCS   := $(wildcard common/*.c verify/*.c registry/*.c registry/*/*.c)
AGENT_SRCS := $(filter-out agent/cli/main.c,$(wildcard agent/*.c agent/*/*.c))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)

LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILDDIR)/%.o)
AGENT_OBJS := $(AGENT_SRCS:%.c=$(BUILDDIR)/%.o)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILDDIR)/tests/%)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS  := $(FUZZ_NAMES:%=$(BUILDDIR)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60

.PHONY: all check deps unit unit-bins unit-asan fuzz-replay e2e demo install clean lint bench fuzz \
	cross check-cross deb check-system check-newcomer
all: edgefetch

edgefetch: $(BUILDDIR)/edgefetch
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILDDIR)/edgefetch: $(BUILDDIR)/agent/cli/main.o $(AGENT_OBJS) $(LIB_OBJS)
	$(CC) $(ALLCFLAGS) $(ALLLDFLAGS) -o $@ $^ $(DEPLIBS)

$(BUILDDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(BUILDDIR)/tests/%: tests/unit/%.c $(AGENT_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(ALLLDFLAGS) -o $@ $^ $(DEPLIBS) $(TESTLIBS)

$(BUILDDIR)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c $(AGENT_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(ALLLDFLAGS) -o $@ $^ $(DEPLIBS)

# Unit tests and the fuzz corpora run once, under ASan and UBSan (they
# abort on the first finding).
ASAN_ENV = BUILDDIR=build/asan \
  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  LDFLAGS="-fsanitize=address,undefined"
unit-asan:
	$(MAKE) --no-print-directory $(ASAN_ENV) unit fuzz-replay

# Replay every fuzz target's corpus with the standalone driver (no libFuzzer needed).
fuzz-replay: $(FUZZ_BINS)
	@for n in $(FUZZ_NAMES); do $(BUILDDIR)/fuzz/fuzz_$$n tests/fuzz/corpus/$$n || exit 1; done

# Real fuzzing with libFuzzer (clang): FUZZ_SECONDS per target; finds go to build/libfuzzer/.
fuzz: deps
	@mkdir -p build/libfuzzer
	@for n in $(FUZZ_NAMES); do \
	  clang -std=c11 -D_GNU_SOURCE -DEF_VERSION=\"$(VERSION)\" -g -O1 $(DEPCFLAGS) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o build/libfuzzer/fuzz_$$n tests/fuzz/fuzz_$$n.c $(AGENT_SRCS) $(LIB_SRCS) $(DEPLIBS) || exit 1; \
	  mkdir -p build/libfuzzer/corpus-$$n; \
	  (cd build/libfuzzer && ./fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    corpus-$$n ../../tests/fuzz/corpus/$$n) || exit 1; \
	done

unit-bins: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
	  EF_VECTORS=$(CURDIR)/tests/vectors $$t || fail=1; done; exit $$fail

# The end-to-end suites drive the ASan/UBSan build of edgefetch, so a leak
# or an overflow on any path they reach fails the test that reached it.
e2e: edgefetch
	$(MAKE) --no-print-directory $(ASAN_ENV) build/asan/edgefetch
	@export EF=$(CURDIR)/build/asan/edgefetch ASAN_OPTIONS=detect_leaks=1; fail=0; for t in tests/e2e/run.sh tests/e2e/hostile.sh tests/e2e/trust.sh tests/e2e/agent.sh tests/e2e/hub.sh tests/e2e/faults.sh tests/e2e/mirrors.sh tests/e2e/partial.sh tests/e2e/link.sh tests/e2e/crash.sh tests/e2e/handoff.sh tests/e2e/ship.sh tests/e2e/system.sh; do $$t || fail=1; done; exit $$fail

check: deps lint
	$(MAKE) --no-print-directory unit-asan
	$(MAKE) --no-print-directory e2e

deps:
	@tests/deps.sh

# These first install what they need, then build in a new make, which asks
# pkg-config about the packages just installed.
bench: deps
	@$(MAKE) --no-print-directory edgefetch
	tests/bench.sh
	tests/link-bench.sh

# The package under a real systemd (also part of make check).
check-system: deps
	@$(MAKE) --no-print-directory edgefetch
	tests/e2e/system.sh

# A fresh Debian 12 rootfs, a clone of HEAD, the README's two commands in it.
check-newcomer: deps
	tests/newcomer.sh

demo: deps
	@$(MAKE) --no-print-directory edgefetch
	tests/demo.sh

# The libraries return errors; only agent/ prints or exits.
lint:
	@! grep -nE '\b(f?printf|puts|perror|exit|abort)\s*\(' registry/*.c registry/*/*.c verify/*.c | grep -v snprintf \
	  || { echo "lint: registry/ and verify/ must not print or exit" >&2; exit 1; }
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|sscanf|strtok)\s*\(' agent/*.c agent/*/*.c registry/*.c registry/*/*.c verify/*.c common/*.c \
	  || { echo "lint: banned string function" >&2; exit 1; }
	@tests/lint-size.sh
	@tests/lint-layers.sh

# Binary, unit and a commented default configuration (never overwritten).
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
install: edgefetch
	install -D -m 0755 edgefetch $(DESTDIR)$(PREFIX)/bin/edgefetch
	@mkdir -p $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|' systemd/edgefetch.service.in >$(DESTDIR)$(UNITDIR)/edgefetch.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/edgefetch.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/edgefetch/README.md
	install -d -m 0755 $(DESTDIR)/etc/edgefetch/trust $(DESTDIR)/etc/edgefetch/certs.d
	@[ -e $(DESTDIR)/etc/default/edgefetch ] || install -D -m 0600 systemd/edgefetch.default $(DESTDIR)/etc/default/edgefetch

# ---- cross builds: a Debian sysroot per architecture, Debian's cross gcc, qemu-user ----
ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
TRIPLET_arm64 := aarch64-linux-gnu
TRIPLET_armhf := arm-linux-gnueabihf
TRIPLET_amd64 := x86_64-linux-gnu
QEMU_arm64 := qemu-aarch64
QEMU_armhf := qemu-arm
# arm64 links for pages of up to 16 KiB (Debian's 4 KiB kernels, the
# Raspberry Pi 5's 16 KiB ones) rather than ld's 64 KiB, which pads the
# file by up to 60 KB to align RELRO.
PAGE_arm64 := -Wl,-z,max-page-size=16384
# Devices build for size (-Os): their flash and page cache count for more
# than the last few percent of speed, and the binary stays under 300 KB.
TRIPLET  = $(TRIPLET_$(ARCH))
SYSROOT  = $(CURDIR)/build/sysroot-$(ARCH)
CROSS_ENV = BUILDDIR=build/$(ARCH) CC="$(TRIPLET)-gcc --sysroot=$(SYSROOT)" \
  CFLAGS="-Os -g -isystem $(SYSROOT)/usr/include/$(TRIPLET)" \
  LDFLAGS="-L$(SYSROOT)/usr/lib/$(TRIPLET) -Wl,-rpath-link,$(SYSROOT)/usr/lib/$(TRIPLET) $(PAGE_$(ARCH))" \
  PKG_CONFIG="env PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/$(TRIPLET)/pkgconfig:$(SYSROOT)/usr/share/pkgconfig pkg-config"

cross-check-arch:
	@case "$(ARCH)" in arm64|armhf) ;; *) echo "make cross: ARCH must be arm64 or armhf" >&2; exit 2 ;; esac

cross: cross-check-arch
	@EXTRA_DEPS="mmdebstrap qemu-user gcc-$(TRIPLET)" tests/deps.sh
	cross/sysroot.sh $(ARCH) $(SYSROOT)
	$(MAKE) --no-print-directory $(CROSS_ENV) build/$(ARCH)/edgefetch
	$(TRIPLET)-strip -o build/$(ARCH)/edgefetch.stripped build/$(ARCH)/edgefetch
	@echo "build/$(ARCH)/edgefetch: $$(stat -c %s build/$(ARCH)/edgefetch.stripped) bytes stripped"

# The unit tests of the cross build, run under qemu-user.
check-cross: cross
	$(MAKE) --no-print-directory $(CROSS_ENV) unit-bins
	@fail=0; for t in $(UNIT_SRCS:tests/unit/%.c=build/$(ARCH)/tests/%); do \
	  EF_VECTORS=$(CURDIR)/tests/vectors $(QEMU_$(ARCH)) -L $(SYSROOT) $$t || fail=1; done; exit $$fail

# ---- a Debian package: make deb ARCH=amd64|arm64|armhf ----
DEBROOT = build/deb-$(ARCH)
deb:
	@EXTRA_DEPS=dpkg-dev tests/deps.sh
	@if [ "$(ARCH)" = "$$(dpkg --print-architecture)" ]; then $(MAKE) --no-print-directory edgefetch && \
	  mkdir -p build/$(ARCH) && strip -o build/$(ARCH)/edgefetch.stripped edgefetch; \
	  else $(MAKE) --no-print-directory cross ARCH=$(ARCH); fi
	rm -rf $(DEBROOT)
	install -D -m 0755 build/$(ARCH)/edgefetch.stripped $(DEBROOT)/usr/bin/edgefetch
	@mkdir -p $(DEBROOT)/lib/systemd/system $(DEBROOT)/DEBIAN
	sed 's|@BINDIR@|/usr/bin|' systemd/edgefetch.service.in >$(DEBROOT)/lib/systemd/system/edgefetch.service
	install -D -m 0600 systemd/edgefetch.default $(DEBROOT)/etc/default/edgefetch
	install -D -m 0644 README.md $(DEBROOT)/usr/share/doc/edgefetch/README.md
	install -d -m 0755 $(DEBROOT)/etc/edgefetch/trust $(DEBROOT)/etc/edgefetch/certs.d
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(ARCH)|' \
	  -e "s|@SIZE@|$$(du -sk $(DEBROOT) | cut -f1)|" systemd/deb/control.in >$(DEBROOT)/DEBIAN/control
	install -m 0644 systemd/deb/conffiles $(DEBROOT)/DEBIAN/conffiles
	install -m 0755 systemd/deb/postinst systemd/deb/prerm systemd/deb/postrm $(DEBROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) build/edgefetch_$(VERSION)_$(ARCH).deb

clean:
	rm -rf build edgefetch

-include $(LIB_OBJS:.o=.d) $(AGENT_OBJS:.o=.d) $(BUILDDIR)/agent/cli/main.d
