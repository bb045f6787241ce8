# Gatehouse container image: build with `docker build -t gatehouse .`
#
# The base images are build arguments so that the image can be built where
# no registry is reachable: internal/packaging's TestDockerImage builds it
# FROM stand-ins made of the host's own Debian packages and Go toolchain
# (see README, "Container"). Real deployments keep the defaults.
#
# Run: mount a config directory at /etc/gatehouse (gatehouse.yaml with
# data_dir: /var/lib/gatehouse, listeners on 0.0.0.0) and keep the data
# volume; it holds the CAs, host key, SQLite database and recordings.
#   docker run -v ./etc:/etc/gatehouse:ro -v gatehouse-data:/var/lib/gatehouse \
#     -p 2222:2222 -p 8080:8080 gatehouse

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/base-debian12:nonroot

# Build stage. cgo is on: the SQLite driver is C.
FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/gatehouse ./cmd/gatehouse \
 && mkdir -p /out/data

# Runtime stage: glibc and CA certificates only, no shell, runs as the
# image's unprivileged "nonroot" user (65532).
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY --from=build --chown=65532:65532 /out/data /var/lib/gatehouse
USER 65532:65532
WORKDIR /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
EXPOSE 2222 8080
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve", "--config", "/etc/gatehouse/gatehouse.yaml"]
