"""The envelope's remembered resolution through trusted proxies is the resolver's own answer.

``Envelope.screen`` joins the lines of each forwarded header and remembers
the resolution of short ones (a bounded LRU). Whatever lines arrive, in any
number and length, asked once or again, the client and scheme it hands the
driver must be exactly what ``TrustedProxies.resolve`` says for the lines as
they came.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.config import load_settings
from bastion.hardening._chain import Envelope, EnvelopeConfig
from bastion.hardening._proxy import TrustedProxies

CONFIG = EnvelopeConfig.from_settings(
    load_settings(
        APP_URL="https://app.example.com",
        ALLOWED_HOSTS="app.example.com",
        TRUSTED_PROXIES="10.0.0.0/8,127.0.0.1",
    )
)
FORWARDED_CONFIG = EnvelopeConfig.from_settings(
    load_settings(
        APP_URL="https://app.example.com",
        ALLOWED_HOSTS="app.example.com",
        TRUSTED_PROXIES="10.0.0.0/8,127.0.0.1",
        PROXY_HEADERS="forwarded",
    )
)

HOPS = st.sampled_from(
    ["203.0.113.7", "10.0.0.2", "2001:db8::1", "[2001:db8::2]:80", "unknown", "", " 10.1.1.1 "]
)
PROTOS = st.sampled_from(["https", "http", "HTTPS", "", "ftp", " https "])
LINE = st.lists(HOPS, min_size=1, max_size=4).map(",".join)
PROTO_LINE = st.lists(PROTOS, min_size=1, max_size=4).map(",".join)
FORWARDED_LINE = st.lists(
    st.builds(lambda hop, proto: f'for="{hop}";proto={proto}', HOPS, PROTOS), min_size=1, max_size=3
).map(",".join)
#: Sometimes one line long enough that it is resolved every time rather than remembered.
LONG = st.just(",".join(["198.51.100.1"] * 60))


def headers(xff: list[str], xfp: list[str], forwarded: list[str]) -> list[tuple[bytes, bytes]]:
    lines = [(b"host", b"app.example.com")]
    lines += [(b"x-forwarded-for", line.encode()) for line in xff]
    lines += [(b"x-forwarded-proto", line.encode()) for line in xfp]
    lines += [(b"forwarded", line.encode()) for line in forwarded]
    return lines


def check(
    config: EnvelopeConfig,
    peer: str,
    scheme: str,
    xff: list[str],
    xfp: list[str],
    forwarded: list[str],
) -> None:
    proxies: TrustedProxies = config.trusted_proxies
    expected = proxies.resolve(peer, scheme, xff, xfp, forwarded)
    envelope = Envelope(config)
    for _ in range(2):  # the second time from what it remembered
        scope = {
            "type": "http",
            "method": "GET",
            "scheme": scheme,
            "path": "/",
            "headers": headers(xff, xfp, forwarded),
            "client": (peer, 4000),
        }
        https, _, resolved = envelope.screen(scope)
        assert scope["client"] == (peer, 4000), "screen changes nothing"
        if (expected.client, expected.scheme) == (peer, scheme):
            assert resolved is None
            assert https is (scheme == "https")
        else:
            assert resolved is not None
            assert resolved == ((expected.client, 4000), expected.scheme)
            assert https is (expected.scheme == "https")


@settings(max_examples=200, deadline=None)
@given(
    peer=st.sampled_from(["127.0.0.1", "10.9.9.9", "192.0.2.1"]),
    scheme=st.sampled_from(["http", "https"]),
    xff=st.lists(st.one_of(LINE, LONG), max_size=3),
    xfp=st.lists(PROTO_LINE, max_size=2),
)
def test_x_forwarded_resolution_is_the_resolvers(
    peer: str, scheme: str, xff: list[str], xfp: list[str]
) -> None:
    check(CONFIG, peer, scheme, xff, xfp, [])


@settings(max_examples=100, deadline=None)
@given(
    peer=st.sampled_from(["127.0.0.1", "192.0.2.1"]),
    forwarded=st.lists(st.one_of(FORWARDED_LINE, LONG.map(lambda line: f"for={line}")), max_size=3),
    xff=st.lists(LINE, max_size=1),
)
def test_forwarded_resolution_is_the_resolvers(
    peer: str, forwarded: list[str], xff: list[str]
) -> None:
    check(FORWARDED_CONFIG, peer, "http", xff, [], forwarded)
