# One image with every binary of the workspace; docker-compose.yml (generated
# by `cargo xtask compose` from the registry) picks the command per
# container. Not built on the development machines (no Docker engine
# there): each BFF's conformance test checks its compose environment
# against its real configuration instead.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Every binary but the dev tooling: a new BFF is picked up with no edit here.
RUN cargo build --release --locked --bins --workspace --exclude xtask --exclude bff-contracts \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN useradd --system --no-create-home bff
COPY --from=build /out/ /usr/local/bin/
# Volumes of BFFs that write (the admin audit trail) are owned by the service user.
RUN mkdir -p /var/lib/admin-bff && chown bff /var/lib/admin-bff
USER bff
