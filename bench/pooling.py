"""Pooling benchmarks for phasewatch_client.kit: prints figures, asserts nothing.

    python bench/pooling.py            # the full run (about 15 s)
    python bench/pooling.py --quick    # a smoke run (a second or two)

(a) Health checks over TLS: GET /health (answered by a HealthKit) from a local HTTPS server in a
    thread on 127.0.0.1 (self-signed ECDSA P-256 certificate made at run time, TLS 1.3), with
    - the kit's pooled client: one keep-alive connection for every check;
    - a new connection each time: the same client settings with keep-alive off, so each check
      pays TCP + TLS handshake and nothing else (the strict comparison, and the claim's);
    - a new client each time: what ``requests.get(url)`` / ``httpx.get(url)`` in a handler does,
      building an SSL context from the CA bundle too.
(b) BigQuery: the kit's cached client vs ``bigquery.Client(...)`` built each time, with
    AnonymousCredentials against the kit's local REST stub served over TLS. Real
    application-default credentials add their lookup and a token fetch to every new client,
    so the "new client" figures are a floor. Measured for acquiring the client alone (the
    claim) and for acquiring it plus one query round trip (what a caller feels).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from phasewatch_client.kit.bigquery import BigQueryClients
from phasewatch_client.kit.health import HEALTH_JSON, HealthKit, Identity, encode
from phasewatch_client.kit.http import HttpClients, HttpSettings, build_client
from phasewatch_client.kit.testing import BigQueryStub, LocalServer, StubReply

NOTES: list[str] = []


@dataclass
class Figure:
    label: str
    samples: list[float]  # seconds per operation
    count: int = 0  # operations measured (more than samples when timed in batches)

    def __post_init__(self) -> None:
        self.count = self.count or len(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(n: int, op: Callable[[], object], warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        op()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        op()
        samples.append(time.perf_counter() - t0)
    return samples


def timed_batch(label: str, n: int, op: Callable[[], object], batches: int = 50) -> Figure:
    """Per-operation time of very fast operations, measured in batches (timer overhead amortised)."""
    per = max(1, n // batches)
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per):
            op()
        samples.append((time.perf_counter() - t0) / per)
    return Figure(label, samples, per * batches)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (cryptography), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phasewatch-bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def bench_tls(n: int, cert: Path, key: Path) -> list[Figure]:
    server_ctx = server_context(cert, key)
    kit = HealthKit(Identity("prediction-worker", version="bench"))

    def health(_request: object) -> StubReply:
        code, body = kit.health()
        return StubReply(code, encode(body), (("Content-Type", HEALTH_JSON),))

    trust = ssl.create_default_context(cafile=str(cert))
    with LocalServer(health, tls=server_ctx) as server:
        url = f"{server.url}/health"
        clients = HttpClients()
        pooled = clients.get(HttpSettings(verify=trust))
        fresh = build_client(HttpSettings(verify=trust, max_keepalive_connections=0))

        def check(client: httpx.Client) -> None:
            client.get(url).raise_for_status()

        def new_client_check() -> None:
            ctx = httpx.create_ssl_context()  # the CA bundle, as every new requests/httpx client loads it
            ctx.load_verify_locations(cafile=str(cert))
            with httpx.Client(verify=ctx) as client:
                check(client)

        before = server.connections
        figures = [Figure("(a) TLS /health, pooled client", timed(n, lambda: check(pooled)))]
        pooled_connections = server.connections - before
        figures.append(Figure("(a) TLS /health, new connection each", timed(n // 4, lambda: check(fresh))))
        figures.append(Figure("(a) TLS /health, new client each", timed(n // 8, new_client_check)))
        fresh.close()
        clients.close()
    NOTES.append(f"pooled client: {pooled_connections} TLS connection(s) opened for {n} checks")
    return figures


def bench_bigquery(n: int, cert: Path, key: Path, tmp: Path) -> list[Figure]:
    import certifi
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    # BigQuery is only reachable over TLS: serve the stub over TLS too, trusted through a CA
    # bundle of certifi's roots plus ours, as the requests session inside the client loads it.
    bundle = tmp / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + cert.read_text())
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    with LocalServer(BigQueryStub(rows=((1,), (2,))), tls=server_context(cert, key)) as server:
        options = {"api_endpoint": server.url}
        cached = BigQueryClients(credentials=AnonymousCredentials(), client_options=options)

        def create() -> bigquery.Client:
            return bigquery.Client(project="p", credentials=AnonymousCredentials(), client_options=options)

        def create_and_close() -> None:
            create().close()

        def query(client: bigquery.Client) -> None:
            list(client.query("SELECT 1").result())

        def query_new_client() -> None:
            client = create()
            try:
                query(client)
            finally:
                client.close()

        figures = [
            timed_batch("(b) BQ client, cached", n * 200, lambda: cached.get("p")),
            Figure("(b) BQ client, created each time", timed(n, create_and_close)),
            Figure("(b) BQ client + query, cached", timed(n // 2, lambda: query(cached.get("p")))),
            Figure("(b) BQ client + query, new client", timed(n // 2, query_new_client)),
        ]
        cached.close()
    return figures


def fmt(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:7.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.1f} µs"
    return f"{seconds * 1e3:7.2f} ms"


def table(rows: list[tuple[Figure, Figure | None, str]]) -> None:
    print(f"{'measure':<40} {'n':>7} {'mean':>10} {'p50':>10} {'p99':>10}  ratio")
    for fig, baseline, target in rows:
        ratio = f"{fig.mean / baseline.mean:,.0f}x" if baseline else ""
        if baseline and fig.mean / baseline.mean < 10:
            ratio = f"{fig.mean / baseline.mean:.1f}x"
        note = f" (target >= {target})" if target else ""
        print(f"{fig.label:<40} {fig.count:>7} {fmt(fig.mean)} {fmt(fig.quantile(0.5))} "
              f"{fmt(fig.quantile(0.99))}  {ratio}{note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run with few iterations")
    args = parser.parse_args(argv)
    n_tls, n_bq = (40, 20) if args.quick else (4000, 600)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cert, key = self_signed(tmp)
        tls = bench_tls(n_tls, cert, key)
        bq = bench_bigquery(n_bq, cert, key, tmp)
    print(f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, "
          f"{'quick' if args.quick else 'full'} run; times per operation")
    table([
        (tls[0], None, ""),
        (tls[1], tls[0], "4x"),
        (tls[2], tls[0], ""),
        (bq[0], None, ""),
        (bq[1], bq[0], "200x"),
        (bq[2], None, ""),
        (bq[3], bq[2], ""),
    ])
    for note in NOTES:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
