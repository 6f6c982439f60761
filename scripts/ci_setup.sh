#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (CI runs it in a fresh clone) and is
# quick when all of it is already there:
#   - kcat (an independent Kafka client for integration tests), prometheus + promtool (binaries only);
#   - chromium (headless: the HTML report's test loads the page in it); openssl (the TLS test's certificates);
#   - Java and Maven for the real Kafka broker, if the machine lacks them;
#   - a virtual environment in .venv (Debian's own python3 refuses a bare `pip install`), holding this package
#     with its dev extras, editable: the test command runs `.venv/bin/python -m pytest`;
#   - the Kafka broker jars, fetched once into .cache/ (see stream_monitor/devtools/kafka).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

packages=()
command -v kcat >/dev/null || packages+=(kcat)
command -v chromium >/dev/null || packages+=(chromium)
command -v openssl >/dev/null || packages+=(openssl)
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then packages+=(prometheus); fi
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
python3 -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)

if [ "${#packages[@]}" -gt 0 ]; then
    echo "ci_setup: installing ${packages[*]}"
    # The prometheus package would start a system prometheus on :9090 that tests do not want. Debian's
    # policy-rc.d hook (exit 101) forbids starting services from maintainer scripts; add it only for this
    # install when the machine does not already have one.
    added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        added_policy="yes"
        trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
        $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    if [ -n "$added_policy" ]; then $sudo rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
    # Belt and braces for systemd machines: never leave the system service running or enabled.
    if [ -d /run/systemd/system ] && systemctl list-unit-files prometheus.service >/dev/null 2>&1; then
        $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

# pip takes ~10 s even when nothing changed; skip it while pyproject.toml and the interpreter are the same
# as at the last successful install (the stamp lives in the git-ignored .cache/, so a fresh clone installs).
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
stamp=".cache/pip-install.stamp"
want="$($py -c 'import sys; print(sys.executable)') $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    $py -m pip install -q --disable-pip-version-check -e '.[dev]'
    mkdir -p .cache && echo "$want" > "$stamp"
fi
$py scripts/kafka_local.py fetch >/dev/null
echo "ci_setup: ready (kcat, chromium, prometheus, promtool, java, mvn, .venv with stream-monitor[dev], Kafka jars)"
