#!/usr/bin/env bash
# Makes sure what the tests need is installed and running: PostgreSQL (a real server,
# from Debian), Chromium (Debian's, driven by Playwright), openssl (s_server, a real
# TLS server for the probes), Prometheus and amtool
# (Debian's, real peers of the alert intake) and, from PyPI, aiosmtpd (a
# real SMTP server), icalendar (an RFC 5545 parser) and openapi-spec-validator. Sourced by scripts/test.sh;
# exports MUSTER_TEST_POSTGRES_URL and MUSTER_CHROMIUM.
set -euo pipefail

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3 python3-pip)
# A real TLS server (openssl s_server) for the certificate probes.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
peers=()
command -v prometheus >/dev/null 2>&1 || peers+=(prometheus)
command -v amtool >/dev/null 2>&1 || peers+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ] || [ ${#peers[@]} -gt 0 ]; then
    echo "installing ${missing[*]} ${peers[*]} from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    if [ ${#missing[@]} -gt 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
    if [ ${#peers[@]} -gt 0 ]; then
        # Prometheus and Alertmanager are real peers for the tests, which start their
        # own on 127.0.0.1. The packages' daemons would listen on every interface:
        # keep them from starting (policy-rc.d) and stop any systemd started anyway.
        policy=/usr/sbin/policy-rc.d
        own_policy=false
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
            as_root chmod +x "$policy"
            own_policy=true
        fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${peers[@]}"
        if [ "$own_policy" = true ]; then as_root rm -f "$policy"; fi
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            as_root systemctl disable --now prometheus prometheus-alertmanager 2>/dev/null || true
        fi
    fi
fi

python_packages=(aiosmtpd icalendar openapi-spec-validator)
if ! python3 -c "import aiosmtpd, icalendar, openapi_spec_validator" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "${python_packages[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${python_packages[@]}"
fi

if [ -z "${MUSTER_TEST_POSTGRES_URL:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    # Debian's cluster, listening on 127.0.0.1 only; the package may not have started it.
    if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
        as_root pg_createcluster "$version" main
    fi
    as_root sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$version/main/postgresql.conf"
    as_root pg_ctlcluster "$version" main start 2>/dev/null || true
    for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -q && break
        sleep 1
    done
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'pg'\""
    export MUSTER_TEST_POSTGRES_URL="postgres://postgres:pg@127.0.0.1:5432/postgres"
fi
export MUSTER_CHROMIUM="${MUSTER_CHROMIUM:-$(command -v chromium)}"
echo "PostgreSQL for tests: ${MUSTER_TEST_POSTGRES_URL//:pg@/:***@}; Chromium: $MUSTER_CHROMIUM"
