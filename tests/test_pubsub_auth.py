"""Pub/Sub push OIDC verification: real RSA keys and X.509 certificates, real google-auth
signing, Google's certificate endpoint played by the product's LocalServer, the real app."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

from monitor.actuator.sinks import MemorySink
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock, SystemClock
from monitor.config import default_config_text, parse_config
from monitor.errors import CertsUnavailable, ConfigError
from monitor.pubsub_auth import CERTS_RETRY_AFTER_S, PushVerifier, freshness_s
from tests.test_service import TOKEN, Http, dumps, ev, push_envelope, rejected

AUDIENCE = "https://phasewatch.example/v1/pubsub/push"
PUSHER = "pubsub-push@my-project.iam.gserviceaccount.com"
PUSH = "/v1/pubsub/push"


@dataclass
class Key:
    """An RSA key, its self-signed certificate (PEM) and a google-auth signer, named ``kid``."""

    kid: str
    cert_pem: str
    private_pem: bytes

    @property
    def signer(self) -> crypt.RSASigner:
        return crypt.RSASigner.from_string(self.private_pem, key_id=self.kid)

    @classmethod
    def generate(cls, kid: str) -> Key:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-signer")])
        start = datetime(2025, 1, 1, tzinfo=UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(private.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + timedelta(days=3650))
                .sign(private, hashes.SHA256()))
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(kid, cert.public_bytes(serialization.Encoding.PEM).decode(), pem)

    def sign(self, **overrides: Any) -> str:
        """A token as Pub/Sub sends it, valid now (real time: google-auth checks it so)."""
        now = int(SystemClock().now().timestamp())
        claims: dict[str, Any] = {
            "aud": AUDIENCE, "iss": "https://accounts.google.com", "email": PUSHER,
            "email_verified": True, "sub": "1234567890", "azp": "1234567890",
            "iat": now, "exp": now + 3600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return bytes(jwt.encode(self.signer, claims, key_id=self.kid)).decode()


@dataclass
class Google:
    """Google's certificate endpoint: serves ``{kid: pem}`` of ``keys``, or ``failure``."""

    keys: list[Key]
    cache_control: str = "public, max-age=3600, must-revalidate, no-transform"
    failure: StubReply | None = None
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: StubRequest) -> StubReply:
        with self.lock:
            self.fetches += 1
        if self.failure is not None:
            return self.failure
        body = {k.kid: k.cert_pem for k in self.keys}
        return StubReply(200, json.dumps(body).encode(), (
            ("Content-Type", "application/json"), ("Cache-Control", self.cache_control)))


@pytest.fixture(scope="module")
def key() -> Key:
    return Key.generate("kid-1")


@pytest.fixture(scope="module")
def other_key() -> Key:
    return Key.generate("kid-2")


@pytest.fixture
def google(key: Key) -> Google:
    return Google([key])


@pytest.fixture
def certs_server(google: Google) -> Iterator[LocalServer]:
    with LocalServer(google) as server:
        yield server


def config_with(push_auth: dict[str, Any] | None) -> Any:
    data = yaml.safe_load(default_config_text())
    if push_auth is not None:
        data.setdefault("server", {})["pubsub_push"] = push_auth
    return parse_config(yaml.safe_dump(data), "<test>")


@pytest.fixture
def build(clock: FakeClock, tmp_path: Path) -> Iterator[Callable[..., Phasewatch]]:
    built: list[Phasewatch] = []

    def make(push_auth: dict[str, Any] | None) -> Phasewatch:
        sink = MemorySink()
        pw = Phasewatch.build(config_with(push_auth), db_path=tmp_path / f"pw{len(built)}.db",
                              clock=clock, sinks={"http": sink, "pubsub": sink, "log": sink})
        built.append(pw)
        return pw

    yield make
    for pw in built:
        pw.close()


@pytest.fixture
def verified(build: Callable[..., Phasewatch], certs_server: LocalServer) -> Phasewatch:
    """A phasewatch whose push path verifies tokens against the local certificate server."""
    return build({"audience": AUDIENCE, "service_accounts": [PUSHER],
                  "certs_url": f"{certs_server.url}/oauth2/v1/certs"})


@pytest.fixture
def http(verified: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(verified, None))
    yield client
    client.close()


def push(http: Http, token: str | None, event_id: str = "p-1", **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    envelope = push_envelope(dumps(ev(event_id=event_id)), f"m-{event_id}")
    return http.post(PUSH, json=envelope, headers=headers)


def assert_refused(response: Any, pw: Phasewatch, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["reason"] == reason
    assert body["details"][0]["field"] == "Authorization"
    assert body["error"].startswith("Authorization: ")
    assert rejected(pw, reason) == 1
    assert pw.store.count() == 0
    assert pw.store.dead_letters() == []


# --- accepted -------------------------------------------------------------------------------

def test_a_valid_token_is_accepted_and_the_event_stored(
    http: Http, verified: Phasewatch, key: Key, google: Google
) -> None:
    response = push(http, key.sign())
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "stored"
    assert verified.store.count() == 1
    assert rejected(verified) == 0
    assert google.fetches == 1


def test_the_plain_issuer_and_a_differently_cased_email_are_accepted(
    http: Http, verified: Phasewatch, key: Key
) -> None:
    response = push(http, key.sign(iss="accounts.google.com", email=PUSHER.upper()))
    assert response.status_code == 200, response.text
    assert verified.store.count() == 1


# --- refused: 401/403 naming the check, counted, nothing stored -------------------------------

@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw=="],
                         ids=["absent", "empty", "bearer only", "bearer blank", "basic"])
def test_a_push_without_a_bearer_token_is_401(
    http: Http, verified: Phasewatch, google: Google, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = http.post(PUSH, json=push_envelope(dumps(ev())), headers=headers)
    assert_refused(response, verified, 401, "push_token_missing")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert google.fetches == 0  # refused before any certificate is needed


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "!!.??.##", TOKEN,
                                   "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"],
                         ids=["one segment", "not base64 json", "two segments", "not base64",
                              "static token", "claims not json"])
def test_a_garbage_token_is_401_malformed(http: Http, verified: Phasewatch, token: str) -> None:
    assert_refused(push(http, token), verified, 401, "push_token_malformed")


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}.{base64.urlsafe_b64encode(b'sig').decode().rstrip('=')}"


@pytest.mark.parametrize("header", [{"alg": "none", "kid": "kid-1"}, {"alg": "HS256", "kid": "kid-1"},
                                    {"alg": "RS256"}],
                         ids=["alg none", "alg HS256", "no kid"])
def test_a_token_with_another_algorithm_or_no_key_id_is_refused(
    http: Http, verified: Phasewatch, header: dict[str, Any]
) -> None:
    claims = {"aud": AUDIENCE, "iss": "accounts.google.com", "email": PUSHER, "email_verified": True}
    assert_refused(push(http, _unsigned(header, claims)), verified, 401, "push_token_malformed")


def test_a_token_signed_by_another_key_under_googles_key_id_is_401(
    http: Http, verified: Phasewatch, other_key: Key
) -> None:
    forged = Key("kid-1", other_key.cert_pem, other_key.private_pem)
    response = push(http, forged.sign())
    assert_refused(response, verified, 401, "push_token_signature")
    assert "bad signature" in response.json()["details"][0]["message"]


def test_a_token_whose_claims_were_altered_after_signing_is_401(
    http: Http, verified: Phasewatch, key: Key
) -> None:
    header, _, signature = key.sign(email="someone@else.com").split(".")
    claims = json.loads(base64.urlsafe_b64decode(key.sign().split(".")[1] + "=="))
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_refused(push(http, f"{header}.{payload}.{signature}"), verified, 401, "push_token_signature")


def test_a_token_of_a_key_google_does_not_publish_is_401(
    http: Http, verified: Phasewatch, other_key: Key
) -> None:
    response = push(http, other_key.sign())
    assert_refused(response, verified, 401, "push_token_signature")
    assert response.json()["details"][0]["value"] == "'kid-2'"


def test_an_expired_token_is_401(http: Http, verified: Phasewatch, key: Key) -> None:
    now = int(SystemClock().now().timestamp())
    response = push(http, key.sign(iat=now - 7200, exp=now - 3600))
    assert_refused(response, verified, 401, "push_token_expired")
    assert "expired" in response.json()["details"][0]["message"]


def test_a_token_from_the_future_is_401(http: Http, verified: Phasewatch, key: Key) -> None:
    now = int(SystemClock().now().timestamp())
    assert_refused(push(http, key.sign(iat=now + 600, exp=now + 4200)), verified, 401, "push_token_expired")


def test_a_token_without_an_expiry_is_401(http: Http, verified: Phasewatch, key: Key) -> None:
    assert_refused(push(http, key.sign(exp=None)), verified, 401, "push_token_malformed")


def test_a_token_for_another_audience_is_401(http: Http, verified: Phasewatch, key: Key) -> None:
    response = push(http, key.sign(aud="https://other.example/push"))
    assert_refused(response, verified, 401, "push_token_audience")
    detail = response.json()["details"][0]
    assert detail["value"] == "'https://other.example/push'"
    assert AUDIENCE in detail["message"]


def test_a_token_of_another_issuer_is_401(http: Http, verified: Phasewatch, key: Key) -> None:
    response = push(http, key.sign(iss="https://evil.example"))
    assert_refused(response, verified, 401, "push_token_issuer")
    assert "accounts.google.com" in response.json()["details"][0]["message"]


def test_a_valid_token_of_an_unlisted_service_account_is_403(
    http: Http, verified: Phasewatch, key: Key
) -> None:
    response = push(http, key.sign(email="intruder@other-project.iam.gserviceaccount.com"))
    assert_refused(response, verified, 403, "push_token_account")
    detail = response.json()["details"][0]
    assert detail["value"] == "'intruder@other-project.iam.gserviceaccount.com'"
    assert "server.pubsub_push.service_accounts" in detail["message"]
    assert PUSHER not in response.text  # the allowed accounts are not disclosed


@pytest.mark.parametrize("claims", [{"email_verified": False}, {"email_verified": "true"},
                                    {"email_verified": None}, {"email": None}],
                         ids=["unverified", "verified as a string", "no email_verified", "no email"])
def test_a_token_without_a_verified_email_is_401(
    http: Http, verified: Phasewatch, key: Key, claims: dict[str, Any]
) -> None:
    assert_refused(push(http, key.sign(**claims)), verified, 401, "push_token_email")


# --- Google's certificates: cached, refetched, fail closed -----------------------------------

def test_certificates_are_fetched_once_for_many_pushes(
    http: Http, verified: Phasewatch, key: Key, google: Google, certs_server: LocalServer
) -> None:
    for i in range(20):
        assert push(http, key.sign(), event_id=f"p-{i}").status_code == 200
    assert verified.store.count() == 20
    assert google.fetches == 1
    assert [r.path for r in certs_server.requests] == ["/oauth2/v1/certs"]


def test_certificates_are_refetched_when_their_max_age_passes(
    http: Http, verified: Phasewatch, key: Key, google: Google, clock: FakeClock
) -> None:
    assert push(http, key.sign(), "a").status_code == 200
    clock.advance(3599)
    assert push(http, key.sign(), "b").status_code == 200
    assert google.fetches == 1
    clock.advance(2)
    assert push(http, key.sign(), "c").status_code == 200
    assert google.fetches == 2


def test_a_new_google_key_is_picked_up_but_unknown_keys_refetch_at_most_once_a_minute(
    http: Http, verified: Phasewatch, key: Key, other_key: Key, google: Google, clock: FakeClock
) -> None:
    assert push(http, key.sign(), "a").status_code == 200
    assert push(http, other_key.sign(), "b").status_code == 401  # fetched a second ago: no refetch
    assert google.fetches == 1
    google.keys.append(other_key)  # Google rotates a key in
    clock.advance(61)
    assert push(http, other_key.sign(), "c").status_code == 200
    assert google.fetches == 2
    for i in range(5):  # a flood of made-up key ids does not hammer the endpoint
        assert push(http, _unsigned({"alg": "RS256", "kid": f"x{i}"}, {}), f"d{i}").status_code == 401
    assert google.fetches == 2


@pytest.mark.parametrize("failure", [
    StubReply(500, b"backend error"),
    StubReply(200, b"<html>not json</html>", (("Content-Type", "text/html"),)),
    StubReply.of_json({"kid-1": "not a certificate"}),
    StubReply.of_json([]),
], ids=["500", "not json", "not a certificate", "not an object"])
def test_unusable_certificates_are_503_and_nothing_is_stored(
    http: Http, verified: Phasewatch, key: Key, google: Google, failure: StubReply,
    clock: FakeClock,
) -> None:
    google.failure = failure
    response = push(http, key.sign())
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["reason"] == "push_certs_unavailable"
    assert rejected(verified, "push_certs_unavailable") == 1
    assert verified.store.count() == 0
    google.failure = None  # back up: the next redelivery is accepted
    clock.advance(CERTS_RETRY_AFTER_S)
    assert push(http, key.sign()).status_code == 200
    assert verified.store.count() == 1


def test_a_failed_certificate_fetch_is_not_repeated_by_every_push(
    http: Http, verified: Phasewatch, key: Key, other_key: Key, google: Google, clock: FakeClock
) -> None:
    """While Google's endpoint fails, a burst of pushes (or of made-up tokens) costs one fetch,
    not one blocking fetch per request queued on the lock (that starves the worker threads)."""
    google.failure = StubReply(500, b"backend error")
    for i in range(5):
        token = (key if i % 2 else other_key).sign()
        response = push(http, token, f"p-{i}")
        assert response.status_code == 503, response.text
        assert "HTTP 500" in response.json()["details"][0]["message"]
    assert google.fetches == 1
    google.failure = None
    clock.advance(CERTS_RETRY_AFTER_S)  # then the next push fetches again, and is accepted
    assert push(http, key.sign(), "p-ok").status_code == 200
    assert google.fetches == 2


def test_while_a_failed_fetch_is_remembered_verify_would_not_fetch(
    verified: Phasewatch, key: Key, google: Google, clock: FakeClock
) -> None:
    config = verified.config.server.pubsub_push
    assert config is not None
    verifier = PushVerifier(config, clock)
    google.failure = StubReply(500, b"backend error")
    header = f"Bearer {key.sign()}"
    assert verifier.would_fetch(header)
    with pytest.raises(CertsUnavailable):
        verifier.verify(header)
    assert not verifier.would_fetch(header)  # answered from memory: safe on the event loop
    with pytest.raises(CertsUnavailable):
        verifier.verify(header)
    assert google.fetches == 1
    clock.advance(CERTS_RETRY_AFTER_S)
    assert verifier.would_fetch(header)


def test_a_certificate_server_that_is_down_is_503_and_nothing_is_stored(
    build: Callable[..., Phasewatch], key: Key
) -> None:
    with LocalServer(Google([key])) as server:
        url = f"{server.url}/oauth2/v1/certs"
    pw = build({"audience": AUDIENCE, "service_accounts": [PUSHER], "certs_url": url, "timeout_s": 2})
    client = Http(create_app(pw, None))
    try:
        response = push(client, key.sign())
    finally:
        client.close()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["reason"] == "push_certs_unavailable"
    assert url in body["details"][0]["message"]
    assert pw.store.count() == 0
    assert pw.store.dead_letters() == []


@pytest.mark.parametrize(("headers", "expected"), [
    ({"cache-control": "public, max-age=19845, must-revalidate"}, 19845.0),
    ({"cache-control": "max-age=600", "age": "100"}, 500.0),
    ({"cache-control": "max-age=60", "age": "100"}, 0.0),
    ({"cache-control": "no-cache, max-age=600"}, 0.0),
    ({"cache-control": "max-age=99999999"}, 86400.0),
    ({}, 300.0),
])
def test_freshness_honours_cache_control(headers: dict[str, str], expected: float) -> None:
    assert freshness_s(headers) == expected


# --- interplay with PHASEWATCH_TOKEN and the unconfigured default -----------------------------

def test_with_the_bearer_token_on_the_push_path_takes_the_oidc_token_instead(
    verified: Phasewatch, key: Key
) -> None:
    client = Http(create_app(verified, TOKEN))
    try:
        assert push(client, key.sign(), "a").status_code == 200
        static = push(client, TOKEN, "b")  # the static token is not a Google token
        assert static.status_code == 401
        assert static.json()["reason"] == "push_token_malformed"
        assert push(client, None, "c").json()["reason"] == "push_token_missing"
        # every other mutating endpoint still needs the static token, never the OIDC one
        events = client.post("/v1/events", json=ev(), headers={"Authorization": f"Bearer {key.sign()}"})
        assert events.status_code == 401
        assert events.json()["reason"] == "unauthorized"
        ok = client.post("/v1/events", json=ev(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 202
        assert client.post(f"{PUSH}/", json={}).status_code == 401  # exemption is exact
    finally:
        client.close()
    assert verified.store.count() == 2


def test_without_pubsub_push_configured_a_push_needs_no_token(build: Callable[..., Phasewatch]) -> None:
    pw = build(None)
    assert pw.config.server.pubsub_push is None
    client = Http(create_app(pw, None))
    try:
        response = push(client, None)
    finally:
        client.close()
    assert response.status_code == 200
    assert response.json()["outcome"] == "stored"
    assert pw.store.count() == 1


def test_without_pubsub_push_the_bearer_token_still_covers_the_push_path(
    build: Callable[..., Phasewatch], key: Key
) -> None:
    pw = build(None)
    client = Http(create_app(pw, TOKEN))
    try:
        assert push(client, key.sign()).json()["reason"] == "unauthorized"
        assert push(client, TOKEN).status_code == 200
    finally:
        client.close()


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("push_auth", "field", "words"), [
    ({"service_accounts": [PUSHER]}, "server.pubsub_push.audience", "required"),
    ({"audience": "", "service_accounts": [PUSHER]}, "server.pubsub_push.audience", "at least 1"),
    ({"audience": AUDIENCE}, "server.pubsub_push.service_accounts", "required"),
    ({"audience": AUDIENCE, "service_accounts": []}, "server.pubsub_push.service_accounts", "at least 1"),
    ({"audience": AUDIENCE, "service_accounts": ["not-an-email"]},
     "server.pubsub_push.service_accounts[0]", "pattern"),
    ({"audience": AUDIENCE, "service_accounts": [PUSHER], "certs_url": "http://certs.example/c"},
     "server.pubsub_push.certs_url", "https"),
    ({"audience": AUDIENCE, "service_accounts": [PUSHER], "certs_url": "not a url"},
     "server.pubsub_push.certs_url", "URL"),
    ({"audience": AUDIENCE, "service_accounts": [PUSHER], "timeout_s": 0},
     "server.pubsub_push.timeout_s", "greater than 0"),
    ({"audience": AUDIENCE, "service_accounts": [PUSHER], "audiences": ["x"]},
     "server.pubsub_push.audiences", "allowed: audience, service_accounts, certs_url"),
], ids=["no audience", "empty audience", "no accounts", "empty accounts", "bad email",
        "http url", "not a url", "zero timeout", "unknown key"])
def test_config_errors_name_the_field(push_auth: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(push_auth)
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, problems
    assert words in problems[field]


def test_the_certificates_default_to_googles() -> None:
    config = config_with({"audience": AUDIENCE, "service_accounts": [PUSHER]})
    push_auth = config.server.pubsub_push
    assert push_auth is not None
    assert str(push_auth.certs_url) == "https://www.googleapis.com/oauth2/v1/certs"
