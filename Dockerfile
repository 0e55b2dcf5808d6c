# One build, four images: docker build --target <service> .
# Debian 12 packages only, the same ones scripts/bootstrap.sh installs.

FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libssl-dev \
        libnng-dev libsqlite3-dev libjwt-dev libcjson-dev libqrencode-dev \
        libcivetweb-dev libuv1-dev libpng-dev libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY gateway gateway
COPY session-svc session-svc
COPY store-svc store-svc
COPY notifier-svc notifier-svc
COPY tests tests
COPY bench bench
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
    && cmake --build /build -j"$(nproc)"

# Runtime base: the shared libraries every service may load, and an
# unprivileged user.
FROM debian:12-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends \
        libnng1 libcjson1 libjwt0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home wa
USER wa
WORKDIR /home/wa

FROM runtime AS gateway
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libcivetweb1 \
    && rm -rf /var/lib/apt/lists/*
USER wa
COPY --from=build /build/bin/gateway /usr/local/bin/gateway
EXPOSE 3001
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS notifier-svc
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libcivetweb1 \
    && rm -rf /var/lib/apt/lists/*
USER wa
COPY --from=build /build/bin/notifier-svc /usr/local/bin/notifier-svc
EXPOSE 3002 5570
ENTRYPOINT ["/usr/local/bin/notifier-svc"]

FROM runtime AS store-svc
USER root
RUN apt-get update && apt-get install -y --no-install-recommends libsqlite3-0 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown wa /data
USER wa
COPY --from=build /build/bin/store-svc /usr/local/bin/store-svc
ENV DB_PATH=/data/sessions.db
VOLUME /data
EXPOSE 5560
ENTRYPOINT ["/usr/local/bin/store-svc"]

FROM runtime AS session-svc
USER root
RUN apt-get update && apt-get install -y --no-install-recommends \
        libuv1 libqrencode4 libpng16-16 chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /sessions && chown wa /sessions
USER wa
COPY --from=build /build/bin/session-svc /usr/local/bin/session-svc
COPY --from=build /src/session-svc/inject/waweb.js /usr/local/share/wa-server/waweb.js
# The browser binary itself: Debian's /usr/bin/chromium is a shell wrapper
# that adds desktop flags and costs ~0.1 s per browser start
# (docs/architecture.md, "Connect -> QR latency").
ENV SESSIONS_DIR=/sessions CHROMIUM_PATH=/usr/lib/chromium/chromium
VOLUME /sessions
EXPOSE 5580
ENTRYPOINT ["/usr/local/bin/session-svc"]
