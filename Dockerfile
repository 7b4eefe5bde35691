# syntax=docker/dockerfile:1
# queuelens image: one entry point, the subcommand picks the role (sidecar, worker, loadgen, demo-peers).
#   docker build -t queuelens . && docker run --rm --read-only -e REDIS_URL=redis://host:6379 -p 9487:9487 queuelens sidecar
# Multi-stage: the TypeScript build with every dependency, the production dependencies alone, and a runtime
# stage with only those, dist/ and the files read at run time. The app's files belong to root and the process
# runs as uid 1000, so it cannot change its own code; it writes nothing outside EXPORT_DIR (the export worker),
# so the root filesystem can be mounted read-only. test/image-layout.test.ts builds this layout from these
# instructions and starts the sidecar from it.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    QUEUELENS_PORT=9487 \
    EXPORT_DIR=/data/exports
WORKDIR /app
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at run time beside dist/: the status page and the runbooks it serves at /runbooks (src/http/status-page.ts),
# the alert rules the demo's Prometheus loads. The Lua scripts are compiled into dist/ (src/redis/lua-embedded.ts).
COPY src/http/status-page.html ./src/http/status-page.html
COPY docs/runbooks ./docs/runbooks
COPY alerts/queuelens.rules.yml ./alerts/queuelens.rules.yml
RUN mkdir -p /data/exports && chown 1000:1000 /data/exports
# The official image's unprivileged user `node`, by number so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 9487
# Liveness only: the sidecar's /livez answers while the process runs, whether or not Redis does; a worker answers
# it on its health port when QUEUELENS_HEALTH_PORT is QUEUELENS_PORT (docker-compose.yml). No curl in the slim image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.QUEUELENS_PORT || 9487) + '/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The OpenTelemetry SDK must load before anything it instruments; it exports nothing unless
# OTEL_EXPORTER_OTLP_ENDPOINT is set.
ENTRYPOINT ["node", "--import", "./dist/tracing/register.js", "dist/cli/index.js"]
CMD ["sidecar"]
