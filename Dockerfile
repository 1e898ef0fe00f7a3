# syntax=docker/dockerfile:1
# weir's image: a build stage compiles src/ to dist/ with tsc; the runtime stage holds only
# dist/, bin/, config/, ui/ and the production dependencies, and runs as the unprivileged `node` user.
#   docker build -t weir .
#   docker run --rm -p 8080:8080 weir                                  # config/examples/container.yaml
#   docker run --rm -p 8080:8080 -v "$PWD/my.yaml:/app/config/weir.yaml:ro" \
#     -e WEIR_CONFIG=/app/config/weir.yaml weir
#   docker run --rm weir validate                                      # check the config and exit

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# No dependency of weir needs an install script (the `node` devDependency, which has one, is omitted).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
# The dashboard's static files (GET /ui on the admin port, docs/dashboard.md).
COPY ui ./ui
# The state file and the generated bucket-cookie secret live in /app/data (mount a volume to keep them).
RUN mkdir -p /app/data && chown node:node /app/data
USER node
ENV WEIR_CONFIG=/app/config/examples/container.yaml
# 8080: the proxy. 9901: the admin API, which container.yaml binds to loopback until given a token.
EXPOSE 8080 9901
# weir drains on SIGTERM (docker stop) and SIGINT, then exits 0.
ENTRYPOINT ["node", "bin/weir.js"]
CMD ["serve"]
