# chatterd's image: `podman build -t chatterd .` (or docker). Two stages: the first builds the virtualenv with pip,
# the second is the runtime (Debian's Python and that virtualenv, no compilers, no pip caches), run as a user
# without privileges. It needs DATABASE_URL and SECRET_KEY; compose.yaml wires it to a Postgres.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
# pip trusts the system's certificates. Behind a TLS-inspecting proxy, mount the host's and point PIP_CERT at them:
# podman build -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt .
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/chatterd \
 && /opt/chatterd/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/chatterd --create-home --shell /usr/sbin/nologin chatterd
COPY --from=build /opt/chatterd /opt/chatterd
WORKDIR /srv/chatterd
COPY . .
ENV PATH=/opt/chatterd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHATTERD_BIND=0.0.0.0:8000 \
    CHATTERD_VAR_DIR=/var/lib/chatterd
USER chatterd
EXPOSE 8000
# Ready, not merely alive: Postgres answers and every migration is applied. On the port CHATTERD_BIND names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ['CHATTERD_BIND'].rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2)"]
CMD ["gunicorn", "web:create_app", "-c", "gunicorn.conf.py"]
