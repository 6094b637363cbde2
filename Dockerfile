# appforged in a container: the daemon, the client (for the health check and
# `docker exec`), Python 3 and uv so the apps it generates run inside.
#   docker build -t appforged .
#   docker run -d --name appforge --network host -v appforge-data:/data appforged
#   docker exec -it appforge appforge signup you@example.com

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The client and the app shim linked statically at a fixed address, as
# `make release` does: the client starts faster, each app's shim holds less.
RUN cargo build --release --locked -p appforge-daemon --bin appforged \
    && cargo rustc --release --locked -p appforge-daemon --bin appforge-shim -- -C target-feature=+crt-static -C relocation-model=static \
    && cargo rustc --release --locked -p appforge-client --bin appforge -- -C target-feature=+crt-static -C relocation-model=static \
    && install -m 0755 target/release/appforged target/release/appforge-shim target/release/appforge /usr/local/bin/

FROM debian:bookworm-slim
# Debian's python3 and venv; uv from PyPI into its own environment.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==0.13.8" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv \
    && groupadd --system --gid 10001 appforge \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin appforge \
    && install -d -o appforge -g appforge -m 0700 /data /run/appforge
COPY --from=build /usr/local/bin/appforged /usr/local/bin/appforge-shim /usr/local/bin/appforge /usr/local/bin/

ENV APPFORGE_DATA_DIR=/data \
    APPFORGE_SOCKET=/run/appforge/appforged.sock \
    APPFORGE_LOG_FORMAT=json \
    HOME=/data \
    XDG_CONFIG_HOME=/data/config
USER 10001:10001
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["appforge", "ping"]
# Apps listen on 127.0.0.1 (never on a public address), so they are reached
# from the host with --network host.
ENTRYPOINT ["appforged"]
CMD ["--port-range", "8100-8199"]
