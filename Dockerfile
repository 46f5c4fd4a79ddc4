# The phonebill-db container image: one static binary on a distroless base, run as non-root.
# It is what the snapshot CronJob runs (`backup --snapshot --keep N` with in-cluster credentials),
# and a way to run the tool where Rust is not installed. Build and push (docs/container.md):
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) \
#     -t phonebilldev.azurecr.io/phonebill-db:0.1.0 .
#   az acr login --name phonebilldev && docker push phonebilldev.azurecr.io/phonebill-db:0.1.0

# Build: Rust on Alpine targets musl, so the binary is static (rustls, no OpenSSL, no libc at run time).
FROM docker.io/library/rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
ARG GIT_COMMIT=unknown
ENV PHONEBILL_DB_COMMIT=${GIT_COMMIT}
RUN cargo build --release --locked --package phonebill-db --bin phonebill-db \
    && install -D -m 0755 target/release/phonebill-db /out/phonebill-db

# Run: no shell, no package manager; uid/gid 65532 (`nonroot`).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/phonebill-db /usr/local/bin/phonebill-db
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/phonebill-db"]
CMD ["--help"]
