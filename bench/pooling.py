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
    so the "new client" figures are a floor. The ratio is for a query through a new vs a
    cached client (what a caller feels); acquiring the client alone (a dict lookup against
    building a client) is shown without a ratio.
Each figure: >= 5 rounds, each the mean time per operation over the round; median [min-max]
of the rounds, wall and CPU time (client and server threads share this process, so CPU is
both sides). Ratios are of the medians and run on a quiet machine: a loaded one inflates the
handshake side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from phasewatch_client.kit.bigquery import BigQueryClients
from phasewatch_client.kit.health import HEALTH_JSON, HealthKit, Identity, encode
from phasewatch_client.kit.http import HttpClients, HttpSettings, build_client
from phasewatch_client.kit.testing import BigQueryStub, LocalServer, StubReply

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Figures, Sample, emit, table

NOTES: list[str] = []


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


def rounds(label: str, n: int, op: Callable[[], object], runs: int = 5, unit: str = "ms") -> Figures:
    """``runs`` rounds of ``n`` operations; each sample is a round's time per operation."""
    figures = Figures(label, unit=unit)
    for _ in range(runs):
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            op()
        figures.samples.append(Sample((time.perf_counter() - t0) / n, (time.process_time() - cpu0) / n))
    return figures


def bench_tls(n: int, cert: Path, key: Path) -> list[Figures]:
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

        for _ in range(3):  # warm up
            check(pooled)
            check(fresh)
        before = server.connections
        figures = [rounds("(a) TLS /health, pooled client", n, lambda: check(pooled))]
        pooled_connections = server.connections - before
        figures.append(rounds("(a) TLS /health, new TLS connection each", max(n // 4, 1), lambda: check(fresh)))
        figures.append(rounds("(a) TLS /health, new client each", max(n // 8, 1), new_client_check))
        fresh.close()
        clients.close()
    NOTES.append(f"pooled client: {pooled_connections} TLS connection(s) opened for {n} checks")
    return figures


def bench_bigquery(n: int, cert: Path, key: Path, tmp: Path) -> list[Figures]:
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

        query(cached.get("p"))  # warm up
        query_new_client()
        figures = [
            rounds("(b) BQ query, cached client", max(n // 2, 1), lambda: query(cached.get("p"))),
            rounds("(b) BQ query, new client", max(n // 2, 1), query_new_client),
            rounds("(b) BQ client acquire only, cached", n * 200, lambda: cached.get("p"), unit="us"),
            rounds("(b) BQ client acquire only, created", n, create_and_close, unit="us"),
        ]
        cached.close()
    return figures


def ratio(fig: Figures, baseline: Figures) -> str:
    return (f"{fig.median() / baseline.median():.1f}x wall, "
            f"{fig.median('cpu_s') / baseline.median('cpu_s'):.1f}x CPU of {baseline.name.split(', ')[-1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run with few iterations")
    args = parser.parse_args(argv)
    n_tls, n_bq = (40, 20) if args.quick else (800, 120)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cert, key = self_signed(tmp)
        tls = bench_tls(n_tls, cert, key)
        bq = bench_bigquery(n_bq, cert, key, tmp)
    print(f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, "
          f"{'quick' if args.quick else 'full'} run; times per operation")
    ratios = {tls[1].name: ratio(tls[1], tls[0]), tls[2].name: ratio(tls[2], tls[0]),
              bq[1].name: ratio(bq[1], bq[0])}
    rows = [{**f.row(), "ratio": ratios.get(f.name, "")} for f in [*tls, *bq]]
    print(table(rows))
    emit("pooling", [{**{k: v for k, v in r.items() if k != "ratio"}, "note": r["ratio"]} for r in rows])
    for note in NOTES:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
