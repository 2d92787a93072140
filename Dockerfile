# assistd server image.
#
#   docker compose up --build          # with docker-compose.yml: Postgres + sandbox image + assistd
#   docker build -t assistd .          # compiles from source in rust:1-bookworm
#
# Without a registry (no rust image), reuse a binary built on a Debian 12 host with
# `cargo build --release --locked`; BuildKit then never touches the `build` stage:
#
#   DOCKER_BUILDKIT=1 docker build --build-arg BINARY_FROM=prebuilt -t assistd .
#
# Do not add a `# syntax=` line: it makes BuildKit pull a frontend image.
#
# The server drives the host's Docker engine (per-thread sandbox containers), so run it with
# /var/run/docker.sock mounted. The container runs as root so that it can use that socket;
# access to the socket is root-equivalent on the host, whichever user the server runs as.
# To run as another user, give it the socket's group: `--user 65534 --group-add $(stat -c %g /var/run/docker.sock)`
# (and a writable ASSISTD_DATA_DIR).

# build (from source) or prebuilt (target/release/assistd from the build context)
ARG BINARY_FROM=build

# ---------------------------------------------------------------------------- build from source
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a change under src/ does not recompile them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/assistd-* target/release/deps/assistd-* \
           target/release/deps/libassistd-* target/release/assistd*
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked \
 && install -m 0755 target/release/assistd /assistd

# ---------------------------------------------------------------------------- prebuilt binary
# The classic builder (DOCKER_BUILDKIT=0, docker-compose v1) builds every stage, this one too, even
# when no binary was built: the pattern `targe[t]` may match nothing, next to a file that exists.
FROM scratch AS prebuilt
COPY Cargo.toml targe[t]/release/assistd /

# ---------------------------------------------------------------------------- chosen binary
FROM ${BINARY_FROM} AS binary

# ---------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
 && mkdir -p /var/lib/assistd
COPY --from=binary /assistd /usr/local/bin/assistd

ENV ASSISTD_ADDR=0.0.0.0:8080 \
    ASSISTD_DATA_DIR=/var/lib/assistd \
    ASSISTD_LOG_FORMAT=json
VOLUME ["/var/lib/assistd"]
EXPOSE 8080

# No curl in slim: bash's /dev/tcp asks /healthz on the port of ASSISTD_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ASSISTD_ADDR##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

CMD ["assistd", "serve"]
