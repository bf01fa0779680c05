# Airlock's HTTP service in a container. Build: docker build -t airlock .
#
# The workspace is a volume at /workspace. Prepare it once, and create a token before the first
# start: the service listens on 0.0.0.0 here, which Airlock refuses while no API token exists.
#   docker volume create airlock-workspace
#   docker run --rm -v airlock-workspace:/workspace airlock airlock init
#   docker run --rm -v airlock-workspace:/workspace airlock airlock token create --role admin --name ops
#   docker run -d --name airlock -p 127.0.0.1:8124:8124 -v airlock-workspace:/workspace airlock
# See docs/operating.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Sandboxed runs (`airlock run`, POST /runs): bubblewrap, fuse-overlayfs (the writable view),
# uidmap (the subordinate ids the code runs as, never the workspace's owner) and libseccomp.
# Inside a container they also need user namespaces and /dev/fuse: run with
# --device /dev/fuse --security-opt seccomp=unconfined --security-opt apparmor=unconfined
# (or a seccomp profile that allows unshare/mount), see docs/operating.md.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap fuse-overlayfs uidmap libseccomp2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/airlock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /opt/airlock/src /opt/airlock/build

# A dedicated user that owns the workspace volume (a new named volume takes this ownership;
# a bind-mounted folder must be writable by uid 10001).
RUN groupadd --system --gid 10001 airlock \
    && useradd --system --uid 10001 --gid airlock --home-dir /nonexistent --shell /usr/sbin/nologin airlock \
    && usermod --add-subuids 200000-265535 --add-subgids 200000-265535 airlock \
    && mkdir /workspace \
    && chown airlock:airlock /workspace
USER airlock

ENV AIRLOCK_WORKSPACE=/workspace
VOLUME ["/workspace"]
EXPOSE 8124

# Healthy only when /health says so: workspace mounted and writable, state database reachable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import json, os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AIRLOCK_PORT', '8124'), timeout=4); sys.exit(0 if json.load(r)['status'] == 'healthy' else 1)"]

CMD ["airlock", "serve", "--host", "0.0.0.0"]
