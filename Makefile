# The two commands a newcomer types: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CSRC   := $(shell find firmware metrology hal -name '*.c' -o -name '*.h' 2>/dev/null)

.PHONY: run dev-config test bench docs lint clean venv image image-test image-kernels

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock setup.py $(CSRC)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# The development meter keeps its configuration in var/meter.toml. `make run` saves the settings that
# differ from a device (Modbus TCP on 5020, BACnet/IP on 47809, the web on 8443/8080 and SNMP on 1161, on
# loopback, not 502, 47808, 443, 80 and 161 on every interface; DLMS/COSEM on 127.0.0.1:4059; DNP3 on, on
# 127.0.0.1:20000) as ordinary,
# versioned configuration changes, each only while its option is still at the device default: what `meter config
# set` changed before, or since, stays as it was. The simulated board's inputs are 5 A class, wired as through a 5:5 A CT (ratio 1): CT primary
# 5 A, in the range a BACnet front end may write (AV3, 5 to 32000 A), and the maximum power (AI76) that of 5 A.
RUN_CONFIG := var/meter.toml
RUN_SETTINGS := metrology.ct_primary=5 metrology.ct_secondary=5 modbus.tcp_port=5020 modbus.bind_address='"127.0.0.1"' \
	bacnet.enabled=true bacnet.ip_port=47809 bacnet.bind_address='"127.0.0.1"' bacnet.ip_prefix=32 \
	dnp3.enabled=true dnp3.bind_address='"127.0.0.1"' \
	web.https_port=8443 web.http_port=8080 web.bind_address='"127.0.0.1"' \
	snmp.enabled=true snmp.port=1161 snmp.bind_address='"127.0.0.1"' \
	dlms.enabled=true dlms.bind_address='"127.0.0.1"'

dev-config: $(STAMP)
	@$(BIN)/meter config set --defaults-only --config $(RUN_CONFIG) --user "make run" \
		--reason "development meter on the simulated board" $(RUN_SETTINGS) >/dev/null

run: dev-config
	$(BIN)/meter run --config $(RUN_CONFIG) --board boards/sim.toml

test: $(STAMP)
	$(BIN)/python -m pytest -m "not hil and not bench" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

docs: $(STAMP)
	$(BIN)/python -m tools.gendocs

# ruff (rules and complexity limit in pyproject.toml) on everything; mypy on the meter's own code.
lint: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lint.lock
	$(BIN)/python -m ruff check firmware hal metrology tools tests benchmarks
	$(BIN)/python -m mypy firmware hal metrology tools

# The disk image a CM4 is flashed with (docs/cm4.md), from Debian bookworm arm64 packages and the signed
# firmware image: build/openmeter-cm4-VERSION.img (.bmap, .sha256). Needs root (mmdebstrap, chroot into the
# arm64 tree under qemu-user). IMAGE_ARGS: e.g. --key vendor.key. Caches under /var/cache/openmeter-image.
image: $(STAMP)
	$(BIN)/python -m tools.image.system $(IMAGE_ARGS)

# That image booted on emulated arm64 (qemu-system-aarch64 -M virt), used as a user would: metering, Modbus,
# HTTPS, BACnet, upgrade, fallback, power cut. IMAGE_TEST_ARGS: e.g. --only modbus,https.
image-test: image
	$(BIN)/python -m tools.image.image_test $(IMAGE_TEST_ARGS)

# The image's metrology C kernels (cross-compiled for aarch64) against their numpy references, run in its arm64
# tree under qemu-user.
image-kernels: image
	$(BIN)/python -m tools.image.kernel_check

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name '*.so' -path '*/firmware/*' -delete
