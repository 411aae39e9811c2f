# syntax=docker/dockerfile:1
# Build a static binary, then run it as a non-root user on distroless.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/greenlight ./cmd/greenlight

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/greenlight /usr/local/bin/greenlight
# State (bbolt file, local cloud inventory) lives in /data.
VOLUME ["/data"]
# The admin endpoints, with --admin 0.0.0.0:9395 (or admin.listen): /metrics
# for Prometheus, and /healthz and /readyz as liveness and readiness probes.
# distroless has no shell, hence no HEALTHCHECK: probe over HTTP instead.
EXPOSE 9395
WORKDIR /data
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/greenlight", "--data", "/data"]
