#!/usr/bin/env bash
# The sandbox conformance suite run again as an unprivileged account: the production path
# (the shipped systemd unit and Docker image run Airlock as a user of its own). Run as root:
# it creates the account (with a subordinate id range, which sandboxed code runs as), lets it
# use /dev/fuse (Debian's udev gives every user 0666; a bare container may not), copies the
# tests where that account can read them, and runs bubblewrap's suite (and runs over an agent's
# pending plan) under it.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${AIRLOCK_TEST_USER:-airlock-ci}
if [ "$(id -u)" != 0 ]; then
    echo "run_unprivileged.sh: not root, so no account to switch to; skipped" >&2
    exit 0
fi
python=/usr/bin/python3.11
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! [ -x "$python" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11
fi
id "$user" >/dev/null 2>&1 || useradd --system --shell /bin/bash --home-dir /nonexistent "$user"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$user"
[ "$(stat -c %a /dev/fuse)" = 666 ] || chmod 0666 /dev/fuse
work=$(mktemp -d /tmp/airlock-unprivileged-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r src tests pyproject.toml "$work/"
if ! runuser -u "$user" -- test -r "$site/pydantic/__init__.py"; then
    cp -r "$site" "$work/site-packages"
    site=$work/site-packages
fi
chown -R "$user" "$work"
chmod 0755 "$work"
cd "$work"
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$work" PYTHONPATH="$work/src:$site" \
    "$python" -m pytest -p no:cacheprovider -q tests/test_sandbox_bwrap.py tests/test_drafts.py "$@"
