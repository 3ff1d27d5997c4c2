# Otto's image: every process runs from it (the command names which), as a
# user that is not root; the agent's pod runs it as root to sandbox steps.
# Build: docker build -t otto:0.1.0 .

# Build stage: production dependencies, and the agent's native step launcher
# (built by npm ci's postinstall with the image's C compiler).
FROM node:24-bookworm AS build
WORKDIR /app
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund

# Runtime stage: Node 24 and the application, owned by root and read-only
# to the user that runs it.
FROM node:24-bookworm-slim
# git: coordinators read projects' pipeline files at their commits, and
# agents check the commits out.
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
USER node
EXPOSE 7670 7671 7672 7673 7674 7675
# The packages run from their TypeScript sources (Node strips the types).
ENTRYPOINT ["node", "--disable-warning=ExperimentalWarning", "--conditions=otto-source"]
CMD ["services/gateway/src/main.ts"]
