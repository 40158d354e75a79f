# syntax=docker/dockerfile:1
# passport: a static-ish Rust binary on distroless (glibc, CA certificates, no shell).
#
# Build:  docker build -t ghcr.io/passport-dev/passport:0.1.0 .
# Lint:   hadolint Dockerfile   (tests/k8s/check.sh runs it)
#
# TODO: pin both base images by digest (`FROM image:tag@sha256:...`) once the release
# pipeline can resolve them; they are pinned by tag here because no registry is reachable
# from the machine this was written on.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Dependencies first, in their own layer: a dummy main compiles every crate in Cargo.lock,
# so editing src/ rebuilds only passport itself.
# The workspace: passport (commands, tools) and core/ (passport-core, the sidecar itself).
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml ./core/
RUN mkdir -p src core/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs core/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src core/src target/release/passport target/release/deps/passport* target/release/deps/libpassport* target/release/.fingerprint/passport*

COPY core/src ./core/src
COPY src ./src
RUN cargo build --release --locked \
    && cp target/release/passport /passport

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="passport" \
      org.opencontainers.image.description="IRSA credential-vending sidecar: serves STS web-identity credentials to AWS SDKs on localhost" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /passport /passport
USER 65532:65532
# 9911: credentials (container and IMDS endpoints; loopback only by default).
# 9912: /healthz, /readyz, /metrics.
EXPOSE 9911 9912
ENTRYPOINT ["/passport"]
CMD ["serve"]
