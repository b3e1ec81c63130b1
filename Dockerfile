# syntax=docker/dockerfile:1
# The weft image: the control plane (`weft control`, the default command), and
# the demo apps and setup steps docker-compose.yml runs from the same image.
# Node's current LTS; the sources run through tsx (a runtime dependency), so
# there is no TypeScript build, only the wasm filters are compiled.

ARG NODE_IMAGE=node:22-bookworm-slim

# Stage 1: compile the built-in proxy-wasm filters (needs AssemblyScript, a dev dependency).
FROM ${NODE_IMAGE} AS filters
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts ./scripts
COPY control ./control
# The filter checker the build runs imports the sidecar's import signatures.
COPY sidecar ./sidecar
COPY filters ./filters
RUN npm run build:filters

# Stage 2: production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Stage 3: runtime.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY control ./control
COPY sidecar ./sidecar
COPY proxy-config ./proxy-config
COPY examples/demo ./examples/demo
COPY --from=filters /src/filters/dist ./filters/dist
# The data dir belongs to the unprivileged user the image runs as.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# 8080: REST API, UI, /metrics, /wasm/<sha256>.wasm; 18000: xDS (ADS gRPC).
EXPOSE 8080 18000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/weft.mjs"]
CMD ["control", "--host", "0.0.0.0", "--data-dir", "/data"]
