# Builder: the official Alpine Rust image targets musl natively, so the release binary is static.
# Fully qualified (docker.io/library/...), so podman finds it without an unqualified-search registry.
FROM docker.io/library/rust:1-alpine AS build
# musl-dev: headers and crt files for the bundled SQLite (C) and the final link.
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
RUN cargo build --release --locked && mkdir -p /out/data && cp target/release/webhook-api /out/

# Runtime: nothing but the binary and an empty /data owned by an unprivileged user.
FROM scratch
COPY --from=build /out/webhook-api /webhook-api
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
ENV DATABASE_URL=sqlite:////data/app.db \
    LOG_LEVEL=INFO \
    PORT=8000
EXPOSE 8000
VOLUME /data
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["/webhook-api", "healthcheck"]
ENTRYPOINT ["/webhook-api"]
