# vaultbridge in a container: the release binary on Debian slim, as a non-root user.
#
#   docker build -t vaultbridge .
#   docker run --rm -v "$PWD/config.yaml:/etc/vaultbridge/config.yaml:ro" \
#       -v vaultbridge-run:/run/vaultbridge vaultbridge
#
# The config should listen on a socket under /run/vaultbridge (shared with the workload
# through a volume) or on TCP. Cloud credentials come from the environment as usual
# (IRSA / EKS Pod Identity, Azure workload identity, ...).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the daemon; the benchmark and the tests are not built.
RUN cargo build --release --locked -p vaultbridge \
 && install -m 0755 target/release/vaultbridge /usr/local/bin/vaultbridge

FROM debian:bookworm-slim
# The platform's CA roots: the AWS and Azure clients (rustls) and the Jira client trust
# them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin vaultbridge \
 && install -d -o vaultbridge -g vaultbridge -m 0750 /run/vaultbridge \
 && install -d -m 0755 /etc/vaultbridge
COPY --from=build /usr/local/bin/vaultbridge /usr/local/bin/vaultbridge
USER vaultbridge
ENV VAULTBRIDGE_CONFIG=/etc/vaultbridge/config.yaml
# SIGTERM drains in-flight calls within server.shutdown_grace, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vaultbridge"]
CMD ["serve"]
