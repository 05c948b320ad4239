# The leanxds binary in a distroless image: a static binary (CGO_ENABLED=0), run
# as a non-root user, in an image with no shell and no package manager. The
# config directory is not in the image: mount it at /etc/leanxds.
#
#   docker build -t leanxds .
#   docker run --rm -p 18000:18000 -p 127.0.0.1:18100:18100 \
#     -v "$PWD/examples/edge:/etc/leanxds:ro" leanxds
#
# Arguments after the image name replace the command (`serve --config
# /etc/leanxds`): `docker run ... leanxds serve --source etcd://...`,
# `docker run leanxds version`. Flags of serve can also be LEANXDS_* variables
# (docker run -e LEANXDS_LOG_LEVEL=debug ...). deploy/kubernetes runs this image.

FROM golang:1.26 AS build
WORKDIR /src
# The modules first: this layer is reused while only the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -trimpath keeps build paths out of the binary. When the build context holds
# .git, the commit is stamped in it (leanxds version, leanxds_build_info).
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/leanxds ./cmd/leanxds

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/leanxds /leanxds
# In a container both ports must take connections from outside it (serve warns
# at start that they do; see docs/serve.md#security); logs are JSON.
ENV LEANXDS_LISTEN=0.0.0.0:18000 \
    LEANXDS_ADMIN=0.0.0.0:18100 \
    LEANXDS_LOG_FORMAT=json
# xDS (gRPC: ADS, the per-type services, CSDS), then the admin HTTP server
# (/metrics, /healthz, /readyz, /debug/).
EXPOSE 18000 18100
# distroless's nonroot user (65532): the process cannot write the image.
USER 65532:65532
ENTRYPOINT ["/leanxds"]
CMD ["serve", "--config", "/etc/leanxds"]
