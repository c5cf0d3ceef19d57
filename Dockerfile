# syntax=docker/dockerfile:1
# Gantry's image: the `gantry` binary on Debian slim, with git (source fetches) and CA roots.
#   docker build -t gantry .
#   docker run -p 8080:8080 -e GANTRY_GITHUB_WEBHOOK_SECRET=... -e GANTRY_API_TOKEN=... gantry
# The daemon runs from environment variables alone (docs/configuration.md).

FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: build the locked dependency graph against dummy
# targets so that this layer is reused until Cargo.toml or Cargo.lock change. Cargo.toml names
# a library, a binary and an integration test, so all three need a file to exist.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/it \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs tests/it/main.rs \
 && cargo build --release --locked --bin gantry \
 && rm -rf src

COPY src ./src
# COPY keeps the files' own mtimes, which can be older than the dummy build's outputs; touching
# the crate roots makes cargo rebuild the gantry crate itself.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin gantry

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid so that volumes (an EFS access point, a host directory) can be owned by it.
RUN groupadd --system --gid 10001 gantry \
 && useradd --system --uid 10001 --gid gantry --home-dir /var/lib/gantry --shell /usr/sbin/nologin gantry \
 && mkdir -p /var/lib/gantry /etc/gantry/manifests \
 && chown gantry:gantry /var/lib/gantry

COPY --from=build /src/target/release/gantry /usr/local/bin/gantry
# The App manifests this Gantry deploys; .dockerignore leaves out manifests/examples. Mount
# another directory over /etc/gantry/manifests to run with different ones.
COPY manifests/ /etc/gantry/manifests/

ENV GANTRY_LISTEN=0.0.0.0:8080 \
    GANTRY_DATA_DIR=/var/lib/gantry \
    GANTRY_MANIFESTS=/etc/gantry/manifests
USER gantry
WORKDIR /var/lib/gantry
EXPOSE 8080
# No HEALTHCHECK: ECS ignores it. The task definition's healthCheck runs `gantry health`
# (deploy/gantry.yaml); the load balancer checks GET /readyz.
ENTRYPOINT ["gantry"]
CMD ["serve"]
