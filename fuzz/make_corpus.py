#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target: fuzz/corpus/<target>/seed-<name>.

Valid examples (signed with the fixed key of fuzz/src/lib.rs: the P-256 scalar 0x11 * 32, the
issuer https://auth.fuzz.example, the clock 4102444800) and a few near misses, so the fuzzers
start from inputs that reach the deep checks. Signatures are deterministic (RFC 6979), so
running it again changes nothing. Needs Python 3 with `cryptography` (44 or later). Run from
anywhere: python3 fuzz/make_corpus.py
"""
import base64
import hashlib
import json
import os
import shutil

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://auth.fuzz.example"
TOKEN_ENDPOINT = ISSUER + "/token"
NOW = 4_102_444_800
ADMIN_KID = "fuzz-key"
KEY = ec.derive_private_key(int.from_bytes(bytes([0x11] * 32), "big"), ec.SECP256R1())
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def segment(v) -> str:
    return b64url(json.dumps(v, separators=(",", ":")).encode())


NUMBERS = KEY.public_key().public_numbers()
X, Y = b64url(NUMBERS.x.to_bytes(32, "big")), b64url(NUMBERS.y.to_bytes(32, "big"))
THUMBPRINT = b64url(hashlib.sha256(f'{{"crv":"P-256","kty":"EC","x":"{X}","y":"{Y}"}}'.encode()).digest())
JWK = {"kty": "EC", "crv": "P-256", "x": X, "y": Y}
# RFC 7638 §3.1's example RSA-2048 public key (seeds only: no target verifies with it).
RSA_JWK = {"kty": "RSA", "e": "AQAB", "n": (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-"
    "5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08"
    "qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")}


def es256(header, claims) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    der = KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def unsigned(header, claims, sig="") -> str:
    return f"{segment(header)}.{segment(claims)}.{sig}"


def write(target: str, seeds: dict):
    d = os.path.join(ROOT, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, f"seed-{name}"), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def basic(ident: str, secret: str) -> str:
    from urllib.parse import quote_plus
    return "Basic " + base64.b64encode(f"{quote_plus(ident)}:{quote_plus(secret)}".encode()).decode()


access = {"iss": ISSUER, "sub": "alice", "aud": "https://api.example.com", "client_id": "c1",
          "scope": "read write", "iat": NOW, "exp": NOW + 3600, "jti": "at-1"}
at_header = {"alg": "ES256", "typ": "at+jwt", "kid": THUMBPRINT}
proof_header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": JWK}
proof = {"jti": "p-1", "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": NOW}
assertion = {"iss": "client-1", "sub": "client-1", "aud": TOKEN_ENDPOINT, "exp": NOW + 60, "iat": NOW, "jti": "a-1"}

write("form_params", {
    "client-credentials": "grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fapi.example.com",
    "code": "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"
            "&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&client_id=app",
    "introspect": "token=eyJ.x.y&include_reason=true&expected_end_user=alice&required_scope=read",
    "repeated": "a=1&a=2",
    "empty-and-utf8": "a=&b=%C3%A9&c=x+y",
    "not-utf8": "a=%FF",
})
write("basic_auth", {
    "basic": basic("my app", "p:ss w") + "\n",
    "basic-and-body-id": basic("c1", "s") + "\nclient_id=c1",
    "post": "\nclient_id=c1&client_secret=s",
    "public": "\nclient_id=app",
    "assertion": "\nclient_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                 "&client_assertion=" + es256({"alg": "ES256", "kid": ADMIN_KID}, assertion),
    "bearer": "Bearer abc\n",
})
write("access_token", {
    "valid": es256(at_header, access),
    "expired": es256(at_header, {**access, "exp": NOW - 1}),
    "alg-none": unsigned({"alg": "none", "typ": "at+jwt", "kid": THUMBPRINT}, access),
    "hs256": unsigned({"alg": "HS256", "typ": "at+jwt", "kid": THUMBPRINT}, access, b64url(b"x" * 32)),
    "wrong-typ": es256({**at_header, "typ": "JWT"}, access),
})
write("dpop_proof", {
    "valid": es256(proof_header, proof),
    "with-ath-and-nonce": es256(proof_header, {**proof, "jti": "p-2", "ath": b64url(hashlib.sha256(b"t").digest()),
                                                "nonce": "n"}),
    "old": es256(proof_header, {**proof, "jti": "p-3", "iat": NOW - 120}),
    "rs256-unsigned": unsigned({"typ": "dpop+jwt", "alg": "RS256", "jwk": RSA_JWK}, proof, "c2ln"),
    "alg-none": unsigned({**proof_header, "alg": "none"}, proof),
    "hs256": unsigned({**proof_header, "alg": "HS256"}, proof, b64url(b"x" * 32)),
    "private-jwk": unsigned({**proof_header, "jwk": {**JWK, "d": b64url(bytes([0x11] * 32))}}, proof, "c2ln"),
    "htu": "HTTPS://Auth.Fuzz.Example:443/a/../%74oken?x=1#frag",
    # Regression: a stray `%` made htu normalisation non-idempotent (fixed in dpop/proof.rs).
    "htu-stray-percent": "HTTPS://auth.fuzz.example/%%666",
})
write("jwt_assertion", {
    "valid": es256({"alg": "ES256", "kid": ADMIN_KID}, assertion),
    "no-kid-aud-array": es256({"alg": "ES256"}, {**assertion, "aud": ["x", ISSUER], "jti": "a-2"}),
    "too-long-lived": es256({"alg": "ES256", "kid": ADMIN_KID}, {**assertion, "exp": NOW + 7200}),
    "alg-none": unsigned({"alg": "none"}, assertion),
    "rs256-unsigned": unsigned({"alg": "RS256", "kid": ADMIN_KID}, assertion, "c2ln"),
    "crit": unsigned({"alg": "ES256", "crit": ["b64"], "b64": False}, assertion, "c2ln"),
})
write("redirect_uri", {
    "https": "https://app.example.com/cb?x=1",
    "loopback": "http://127.0.0.1:9000/callback",
    "loopback-v6": "http://[::1]/cb",
    "private-use": "com.example.app:/oauth2redirect",
    "javascript": "javascript:alert(1)",
    "fragment": "https://app.example.com/cb#frag",
    "http": "http://app.example.com/cb",
})
clients = {
    "client-credentials": {"client_name": "billing", "grant_types": ["client_credentials"],
                           "scope": "orders:read orders:write", "access_token_lifetime": 600},
    "public-code": {"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:9000/callback", "com.example.app:/cb"],
                    "scope": "read write", "pre_approved_scopes": "read", "refresh_token_lifetime": 3600},
    "private-key-jwt": {"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"],
                        "jwks": {"keys": [{**JWK, "kid": ADMIN_KID}]}, "dpop_bound_access_tokens": True},
    "private-key-jwt-rsa": {"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"],
                            "jwks": {"keys": [{**RSA_JWK, "kid": "rsa-1", "alg": "RS256", "use": "sig"}]}},
    "jwt-bearer": {"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "scope": "read",
                   "jwt_bearer_issuers": [{"issuer": "https://idp.example", "enabled": True,
                                           "jwks": {"keys": [{**JWK, "kid": "idp-1"}]}}]},
    "custom-claims": {"grant_types": ["client_credentials"], "scope": "read",
                      "custom_claims": [{"name": "tier", "value": "gold"}, {"name": "dept", "attribute": "dept"}]},
}
# Regression: an empty RSA modulus overflowed the bit count (fixed in assertion/registration.rs).
clients["rsa-empty-n"] = {**clients["private-key-jwt-rsa"], "jwks": {"keys": [{**RSA_JWK, "n": "", "kid": "r"}]}}
write("client_metadata", {**{k: json.dumps(v) for k, v in clients.items()},
                           "nested": '{"jwks":' + "[" * 300 + "]" * 300 + "}"})
write("settings_merge", {
    "set": json.dumps({"access_token_ttl": 600, "consent_enabled": False, "refresh_grace": 0}),
    "reset": json.dumps({"access_token_ttl": None, "lockout_threshold": 3}),
    "resource": json.dumps({"default_resource": "https://api.example.com", "dpop_nonce_required": True}),
    "unknown": json.dumps({"colour": 1}),
})
# admin_api: the first byte picks the route (fuzz_targets/admin_api.rs ROUTES), the rest is the body.
admin = [
    (0, "create-client", clients["client-credentials"]),
    (1, "patch-client", {"client_name": "renamed", "scope": None, "redirect_uris": ["https://app.example.com/cb"]}),
    (2, "rotate-secret", {"overlap_seconds": 60}),
    (3, "create-rs", {"identifier": "https://api2.fuzz.example", "name": "API",
                      "scopes": [{"name": "orders:read", "description": "Read"}, "orders:write"]}),
    (4, "patch-rs", {"name": None, "scopes": ["read", "write"]}),
    (5, "create-user", {"username": "bob", "password": "correct horse battery", "attributes": {"dept": "x"}}),
    (6, "patch-user", {"enabled": False, "attributes": {"email": "a@example.com"}, "groups": ["staff"]}),
    (7, "create-group", {"name": "ops", "description": "Operations"}),
    (8, "patch-group", {"description": None}),
    (9, "revoke", {"jti": "x"}),
    (10, "revoke-all", {"end_user": "alice"}),
    (11, "rotate-key", {"activate_after": 0}),
    (12, "retire-key", {"force": True}),
    (13, "settings", {"access_token_ttl": 600, "group_uri_enabled": True}),
]
write("admin_api", {name: bytes([i]) + json.dumps(body).encode() for i, name, body in admin})
print("seed corpus written to", ROOT)
