# Build a static binary; generated code is committed, so no generator runs here.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /handoff ./cmd/server

# Run it as a non-root user on a base image with neither shell nor package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /handoff /handoff
USER nonroot:nonroot
# In a container the server must listen beyond loopback (its own default is 127.0.0.1:8080).
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# No shell or curl in the image: the binary checks its own /readyz.
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 CMD ["/handoff", "healthcheck"]
ENTRYPOINT ["/handoff"]
CMD ["serve"]
