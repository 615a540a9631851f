# syntax=docker/dockerfile:1

# ---- build: install all dependencies, compile TypeScript, drop dev deps ----
FROM node:20-bookworm-slim AS build
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY public ./public
RUN npm run build \
 && npm prune --omit=dev

# ---- runtime: compiled output and production dependencies only ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app

# Files stay owned by root: the unprivileged user can read but not modify them.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/templates ./templates
COPY --from=build /app/public ./public
COPY --from=build /app/package.json ./package.json

USER node
EXPOSE 3000

# Slim images have no curl; use Node's global fetch.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# The server applies pending migrations itself at start.
CMD ["node", "dist/src/server.js"]
