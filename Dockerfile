# One image with every binary of the workspace; docker-compose.yml picks the
# command per container. Not built on the development machines (no Docker
# engine there): `cargo test -p xtask` checks the compose file against the
# code instead.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins --package services-mock --package web-bff --package mobile-bff --package partner-bff --package admin-bff

FROM debian:bookworm-slim
RUN useradd --system --no-create-home bff
COPY --from=build /src/target/release/services-mock /src/target/release/web-bff /src/target/release/mobile-bff \
     /src/target/release/partner-bff /src/target/release/admin-bff /usr/local/bin/
RUN mkdir -p /var/lib/admin-bff && chown bff /var/lib/admin-bff
USER bff
