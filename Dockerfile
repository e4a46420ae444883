# cairn's writer, query service and agent demo, with Oracle Instant Client
# (cairn's Oracle store uses godror, which loads the client library at run
# time), and the nats-server version pinned in go.mod. docker-compose.yml
# builds it once and runs every service from it:
#
#   docker build -t cairn .
#   docker run --rm cairn writer --help
#
# The Go programs need cgo for godror, hence the Debian-based Go image (gcc)
# and a glibc runtime. Instant Client Basic Light is enough: cairn talks to
# the database in AL32UTF8 and needs English messages only. Pin another
# Instant Client (21 or later; 23.x recommended) with
#   --build-arg INSTANT_CLIENT_URL=<zip of instantclient-basiclite-linux.x64-VERSION>
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/ ./cmd/writer ./cmd/query ./cmd/agent \
 && CGO_ENABLED=0 go build -trimpath -o /out/nats-server github.com/nats-io/nats-server/v2

FROM debian:bookworm-slim
ARG INSTANT_CLIENT_URL=https://download.oracle.com/otn_software/linux/instantclient/instantclient-basiclite-linuxx64.zip
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip libaio1 \
 && mkdir -p /opt/oracle \
 && curl -fsSL -o /tmp/instantclient.zip "$INSTANT_CLIENT_URL" \
 && unzip -q /tmp/instantclient.zip -d /opt/oracle \
 && rm /tmp/instantclient.zip \
 && mv /opt/oracle/instantclient_* /opt/oracle/instantclient \
 && echo /opt/oracle/instantclient > /etc/ld.so.conf.d/oracle-instantclient.conf \
 && ldconfig \
 && apt-get purge -y curl unzip \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
# ldconfig finds the client; LD_LIBRARY_PATH says the same for anyone reading.
ENV LD_LIBRARY_PATH=/opt/oracle/instantclient
COPY --from=build /out/ /usr/local/bin/
COPY deploy/nats/ /etc/cairn/nats/
RUN useradd --system --create-home --home-dir /var/lib/cairn cairn \
 && mkdir -p /data \
 && chown cairn /data
USER cairn
WORKDIR /var/lib/cairn
CMD ["writer", "--help"]
