# srs-hooks: build with the toolchain, run with production dependencies only.

# Builder: install everything (better-sqlite3 compiles from source here), build, then drop dev dependencies.
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json build.mjs ./
# The server and the operator console: the benchmarks (scripts/bench) and the simulators
# (test/fixtures/) stay out of the image.
COPY src ./src
COPY routes ./routes
COPY web ./web
COPY scripts/build-console.mjs ./scripts/
RUN npm run build && npm prune --omit=dev

# Runtime: the compiled server and its production node_modules (with the compiled SQLite binding), as a non-root user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=6000 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY srs.conf.example ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 6000
# Liveness from inside the container, with node itself (the slim image has no curl), over node:http:
# fetch refuses port 6000 (a WHATWG "bad port"), our default.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('node:http').get({host:'127.0.0.1',port:process.env.PORT||6000,path:'/healthz',timeout:2500},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve"]
