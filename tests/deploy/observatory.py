"""Grade the front door with the MDN HTTP Observatory, on this machine, over HTTPS.

    uv run python -m tests.deploy.observatory          # prints both grades and scores
    uv run python -m tests.deploy.observatory --json   # the Observatory's full output

It exits 1 unless both grades are A+ and both scores are the ones
deploy/README.md states, so the README cannot drift from what the scanner
gives (it once said 125 and 130 when the scanner gave 130 and 135).

It starts the example app behind deploy/Caddyfile (``tls internal`` on
``https://localhost:<free port>``), then runs the Observatory's own scanner
(npm package ``@mdn/mdn-http-observatory``, pinned below) twice:

1. ``localhost:<port>``: exactly what its CLI does (``src/scan.js``), anonymous.
   Its HTTP probe goes to the same port, where Caddy's ``http_redirect``
   listener answers with a redirect to HTTPS, so the redirection test is real.
2. ``localhost:<port>/account`` signed in: the scanner's cookie jar is seeded
   with the ``Set-Cookie`` a real sign-in returned, so the cookie test grades
   the session cookie's actual attributes. The app sets no cookie on a GET,
   so an anonymous scan can only report "no cookies".

Why a script and not a test: the scanner comes from the npm registry (about
230 packages, ~15 s) and is not vendored, so it cannot run offline. The
install is cached under ``~/.cache/bastion/`` (or ``BASTION_OBSERVATORY_DIR``);
after that, a run takes a few seconds.

Offline adjustments, both read from the package's source:

- ``npm install --ignore-scripts``: its postinstall downloads Chromium's HSTS
  preload list and IANA's TLD list, which fails without the internet. The two
  files it would write are stubbed: ``conf/hsts-preload.json`` as ``{}`` (only
  the "HSTS preloaded" bonus reads it; no internal host is on that list) and
  ``conf/tld-list.json`` as ``[]`` (only the web API's host-name validator
  reads it; the CLI scan never does).
- ``bin/wrapper.js`` is bypassed: it only sets ``NODE_EXTRA_CA_CERTS`` to a
  bundle of public CAs, which would hide Caddy's local CA; ``src/scan.js`` is
  run with ``NODE_EXTRA_CA_CERTS`` pointing at that CA's root instead, so the
  certificate verifies (an unverified one costs the HSTS test).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.caddy import CaddyServer
from tests.support.servers import ROOT, AppServer

README = ROOT / "deploy" / "README.md"
#: "**A+, 130** anonymous and **A+, 135** signed in": the sentence the script keeps true.
_CLAIM = re.compile(
    r"\*\*(?P<anonymous>[A-F][+-]?, \d+)\*\* anonymous and\s+"
    r"\*\*(?P<signed_in>[A-F][+-]?, \d+)\*\* signed in"
)

PACKAGE = "@mdn/mdn-http-observatory"
VERSION = "1.4.8"

#: Seeds the scanner's cookie jar before its first request, then runs its own scan().
SIGNED_IN_SCAN = """\
import { pathToFileURL } from "node:url";
const [pkgDir, target, setCookie] = process.argv.slice(2);
const load = (rel) => import(pathToFileURL(`${pkgDir}/${rel}`).href);
const { Session } = await load("src/retriever/session.js");
const { scan } = await load("src/scanner/index.js");
const init = Session.prototype.init;
Session.prototype.init = async function () {
  if (this.url.protocol === "https:") this.jar.setCookieSync(setCookie, this.url.href);
  return init.call(this);
};
const result = await scan(target);
const tests = Object.fromEntries(
  Object.entries(result.tests).map(([key, { scoreDescription, ...rest }]) => [key, rest])
);
console.log(JSON.stringify({ scan: result.scan, tests }, null, 2));
"""


@dataclass(frozen=True)
class Scan:
    label: str
    target: str
    result: dict[str, Any]

    @property
    def grade(self) -> str:
        grade: str = self.result["scan"]["grade"]
        return grade

    @property
    def score(self) -> int:
        score: int = self.result["scan"]["score"]
        return score


def claimed(readme: str) -> tuple[str, str]:
    """The (anonymous, signed in) results deploy/README.md states, as "A+, 130"."""
    found = _CLAIM.search(readme)
    if found is None:
        raise SystemExit(f"observatory: no scores sentence in {README} (see _CLAIM)")
    return found["anonymous"], found["signed_in"]


def install_dir() -> Path:
    default = Path.home() / ".cache" / "bastion" / f"mdn-http-observatory-{VERSION}"
    return Path(os.environ.get("BASTION_OBSERVATORY_DIR", default))


def ensure_installed(root: Path) -> Path:
    """The package directory, installed with npm on first use, data files stubbed."""
    package = root / "node_modules" / "@mdn" / "mdn-http-observatory"
    if not (package / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("observatory: npm not found (apt-get install -y npm)")
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(root),
                f"{PACKAGE}@{VERSION}",
            ],
            check=True,
            timeout=600,
        )
    for name, stub in (("hsts-preload.json", "{}"), ("tld-list.json", "[]")):
        path = package / "conf" / name
        if not path.exists():
            path.write_text(stub + "\n")
    return package


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise SystemExit("observatory: node not found (apt-get install -y nodejs)")
    return found


def run_scan(args: list[str], ca: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [node(), *args],
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(ca)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"scan failed: {completed.stdout}\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout)
    if "error" in result:
        raise RuntimeError(f"scan failed: {result['error']}")
    return result


def session_cookie(caddy: CaddyServer) -> str:
    """Sign up and sign in through the front door; the Set-Cookie it answered with."""
    credentials = {"email": "observatory@example.com", "password": "a long enough password"}
    headers = {"origin": caddy.url}
    with caddy.client() as client:
        client.post(caddy.url + "/api/auth/sign-up", json=credentials, headers=headers)
        signed_in = client.post(caddy.url + "/api/auth/sign-in", json=credentials, headers=headers)
    signed_in.raise_for_status()
    cookie: str = signed_in.headers["set-cookie"]
    return cookie


def observe(package: Path) -> list[Scan]:
    caddy = CaddyServer([])
    app = AppServer({"APP_URL": caddy.url, "SIGN_IN_RATE_LIMIT": "100/minute"})
    caddy.env["BASTION_UPSTREAMS"] = f"127.0.0.1:{app.port}"
    app.start()
    try:
        caddy.start()
        host = f"localhost:{caddy.https_port}"
        anonymous = run_scan([str(package / "src" / "scan.js"), host], caddy.root_cert)
        with tempfile.TemporaryDirectory(prefix="bastion-observatory-") as tmp:
            shim = Path(tmp) / "signed_in_scan.mjs"
            shim.write_text(SIGNED_IN_SCAN)
            signed_in = run_scan(
                [str(shim), str(package), f"{host}/account", session_cookie(caddy)], caddy.root_cert
            )
        # The seeded cookie was sent: the graded (HTTPS) session got /account
        # itself, not a redirect to /sign-in. (Its HTTP probe, unseeded, is
        # redirected; the preflight OPTIONS gets 405.)
        account = [
            entry["status"]
            for entry in map(json.loads, caddy.output().splitlines())
            if entry.get("request", {}).get("uri") == "/account"
            and entry["request"]["method"] == "GET"
            and "tls" in entry["request"]
        ]
        if 200 not in account:
            raise RuntimeError(f"the signed-in scan did not reach /account: {account}")
        return [
            Scan("anonymous, as the CLI scans", host, anonymous),
            Scan("signed in, session cookie", f"{host}/account", signed_in),
        ]
    finally:
        caddy.close()
        app.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the scanner's full output")
    args = parser.parse_args(argv)
    scans = observe(ensure_installed(install_dir()))
    if args.json:
        print(json.dumps({s.label: s.result for s in scans}, indent=2))
    else:
        print(
            f"MDN HTTP Observatory {VERSION} (algorithm {scans[0].result['scan']['algorithmVersion']})"
        )
        for s in scans:
            print(f"\n{s.label}: https://{s.target}  grade {s.grade}  score {s.score}")
            for name, test in s.result["tests"].items():
                mark = "pass" if test["pass"] else "FAIL"
                print(f"  {mark}  {test['scoreModifier']:+4d}  {name}: {test['result']}")
    measured = tuple(f"{s.grade}, {s.score}" for s in scans)
    stated = claimed(README.read_text())
    if measured != stated:
        print(
            f"\ndeploy/README.md says {stated[0]} anonymous and {stated[1]} signed in; "
            f"the scanner gives {measured[0]} and {measured[1]}: correct the README."
        )
        return 1
    return 0 if all(s.grade == "A+" for s in scans) else 1


if __name__ == "__main__":
    sys.exit(main())
