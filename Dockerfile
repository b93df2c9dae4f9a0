# vaultbridge in a container: the release binary on distroless (glibc, libgcc, the CA
# roots, no shell, no package manager), as the numeric non-root user 65532.
#
#   docker build -t vaultbridge:0.1.0 .
#   docker run --rm --read-only \
#       -v "$PWD/config.yaml:/etc/vaultbridge/config.yaml:ro" \
#       -v vaultbridge-run:/run/vaultbridge vaultbridge:0.1.0
#
# The config should listen on a socket under /run/vaultbridge (shared with the workload
# through a volume) or on TCP. Cloud credentials come from the environment as usual
# (IRSA / EKS Pod Identity, Azure workload identity, ...). Probes run the binary itself
# (`vaultbridge health`), so no shell is needed. deploy/kubernetes/ has the manifests;
# scripts/check-deploy checks this file statically (it cannot be built in CI).
#
# Both base images are pinned by tag; for a reproducible build pin them by digest as
# well (`image:tag@sha256:...`, from `docker buildx imagetools inspect image:tag`).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the daemon; the benchmark and the tests are not built. The empty socket
# directory is made here because the runtime image has no shell to make it.
RUN cargo build --release --locked -p vaultbridge \
 && install -D -m 0755 target/release/vaultbridge /out/usr/local/bin/vaultbridge \
 && install -d -m 0750 /out/run/vaultbridge

# Debian 12's glibc, as the build stage's, so the binary's libc, libm and libgcc_s
# match; `nonroot` is the variant whose default user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/vaultbridge /usr/local/bin/vaultbridge
COPY --from=build --chown=65532:65532 /out/run/ /run/
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENV VAULTBRIDGE_CONFIG=/etc/vaultbridge/config.yaml \
    VAULTBRIDGE_ADDR=unix:/run/vaultbridge/socket/vaultbridge.sock
# SIGTERM drains in-flight calls within server.shutdown_grace, then exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["/usr/local/bin/vaultbridge", "health"]
ENTRYPOINT ["/usr/local/bin/vaultbridge"]
CMD ["serve"]
