# phasewatch on Cloud Run: a non-root user, listening on $PORT (Cloud Run sets it; 8080 here).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client/pyproject.toml client/README.md ./client/
COPY client/phasewatch_client ./client/phasewatch_client
COPY monitor ./monitor
COPY slo ./slo
COPY alerts ./alerts
COPY examples ./examples
# ./client named here builds the phasewatch-client wheel from this tree: the server's
# dependency on it resolves to that wheel, never to PyPI.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./client '.[gcp]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 phasewatch \
    && mkdir -p /data && chown phasewatch:phasewatch /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER phasewatch
WORKDIR /data
# The store is $PHASEWATCH_DB: an SQLite file by default, a postgresql:// URL (a secret)
# for several instances.
ENV PORT=8080 PYTHONUNBUFFERED=1 PHASEWATCH_DB=/data/phasewatch.db
EXPOSE 8080
# `serve` binds 0.0.0.0 here and takes the port from $PORT when --port is not given.
CMD ["phasewatch", "serve", "--host", "0.0.0.0"]
