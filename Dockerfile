# git-audit in a container: build, then a slim runtime that runs as a non-root user.
#   docker build -t registry.example.com/git-audit:0.1.0 .
#   docker run --rm -v "$PWD:/data" registry.example.com/git-audit:0.1.0 verify HEAD

FROM rust:1.89-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libgpgme-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo install --locked --root /out --path .

FROM debian:bookworm-slim
# libgpgme11: the binary's one shared library beyond libc; git and gnupg: what it runs;
# ca-certificates: TLS to GitHub, webhooks and PostgreSQL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgpgme11 git gnupg openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 git-audit \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home git-audit
COPY --from=build /out/bin/git-audit /usr/local/bin/git-audit
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["git-audit"]
CMD ["--help"]
