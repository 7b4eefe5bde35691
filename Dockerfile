# syntax=docker/dockerfile:1
# queuelens image: one entry point, the subcommand picks the role (sidecar, worker, loadgen).
#   docker build -t queuelens . && docker run --rm -e REDIS_URL=redis://host:6379 -p 9487:9487 queuelens sidecar

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    QUEUELENS_PORT=9487 \
    EXPORT_DIR=/data/exports
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# The Lua scripts are read at run time from src/redis/lua, beside dist/ (see src/redis/scripts.ts).
COPY --from=build --chown=node:node /app/src/redis/lua ./src/redis/lua
RUN mkdir -p /data/exports && chown node:node /data/exports
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 9487
# Liveness only: /livez answers while the process runs, whether or not Redis does. No curl in the slim image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.QUEUELENS_PORT || 9487) + '/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The OpenTelemetry SDK must load before anything it instruments; it exports nothing unless
# OTEL_EXPORTER_OTLP_ENDPOINT is set.
ENTRYPOINT ["node", "--import", "./dist/tracing/register.js", "dist/cli/index.js"]
CMD ["sidecar"]
