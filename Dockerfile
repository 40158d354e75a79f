# syntax=docker/dockerfile:1
# passport: a Rust binary on distroless (glibc, CA certificates, no shell), for linux/amd64
# and linux/arm64 (Graviton). The builder runs on the build machine's own platform and
# cross-compiles for the target (no emulation): rustup's target plus Debian's cross gcc.
#
# Build (both architectures, labels from build arguments):
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t ghcr.io/passport-dev/passport:0.1.0 .
# Lint:   hadolint Dockerfile   (tests/k8s/check.sh runs it, and checks the pins below)
#
# Base images are pinned by digest (the multi-arch index of the tag). Refresh both with
#   docker buildx imagetools inspect rust:1.95-slim-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
# Builder and runtime are both Debian 12 (glibc 2.36): the binary links against the glibc
# it runs with.

ARG RUST_IMAGE=rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS builder
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# The Rust target and, when it differs from the build machine's, the cross C toolchain
# (aws-lc-rs compiles C for the target). Unknown architectures stop the build here.
RUN case "${TARGETARCH}" in \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && if [ "$(dpkg --print-architecture)" != "${TARGETARCH}" ]; then \
         if [ "${TARGETARCH}" = arm64 ]; then \
           apt-get update \
           && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu=4:12.2.0-3 libc6-dev-arm64-cross=2.36-8cross1 \
           && rm -rf /var/lib/apt/lists/*; \
         else \
           apt-get update \
           && apt-get install -y --no-install-recommends gcc-x86-64-linux-gnu=4:12.2.0-3 libc6-dev-amd64-cross=2.36-8cross1 \
           && rm -rf /var/lib/apt/lists/*; \
         fi; \
       fi \
    && rustup target add "$(cat /rust-target)"
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc

# Dependencies first, in their own layer: a dummy main compiles every crate in Cargo.lock,
# so editing src/ rebuilds only passport itself. A native build (target = build machine)
# drops the cross linker variables.
# The workspace: passport (commands, tools) and core/ (passport-core, the sidecar itself).
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml ./core/
RUN target="$(cat /rust-target)" \
    && if [ "$(dpkg --print-architecture)" = "${TARGETARCH}" ]; then \
         unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER CC_x86_64_unknown_linux_gnu \
               CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER CC_aarch64_unknown_linux_gnu; \
       fi \
    && mkdir -p src core/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs core/src/lib.rs \
    && cargo build --release --locked --target "$target" \
    && rm -rf src core/src "target/$target/release/passport" "target/$target/release/deps/passport"* \
              "target/$target/release/deps/libpassport"* "target/$target/release/.fingerprint/passport"*

COPY core/src ./core/src
COPY src ./src
RUN target="$(cat /rust-target)" \
    && if [ "$(dpkg --print-architecture)" = "${TARGETARCH}" ]; then \
         unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER CC_x86_64_unknown_linux_gnu \
               CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER CC_aarch64_unknown_linux_gnu; \
       fi \
    && cargo build --release --locked --target "$target" \
    && cp "target/$target/release/passport" /passport

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG RUNTIME_IMAGE
LABEL org.opencontainers.image.title="passport" \
      org.opencontainers.image.description="IRSA credential-vending sidecar: serves STS web-identity credentials to AWS SDKs on localhost" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=builder /passport /passport
USER 65532:65532
# 9911: credentials (container endpoint; IMDS only when enabled), on loopback. 9912:
# /healthz, /readyz, /metrics (never credentials), on the pod IP for the kubelet's probes.
EXPOSE 9911 9912
ENTRYPOINT ["/passport"]
CMD ["serve"]
