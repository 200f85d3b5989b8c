"""GraphiQL's third-party files: pinned npm packages, fetched once with `npm pack` and checked by hash.

They are about 4 MB (GraphiQL's bundle alone is 3.5 MB), too large to commit for a page that only
development uses, so `vaxvault assets fetch` (run by `make dev` and the test setup) puts them in
`api/browser/static/vendor/` (git-ignored). The tarball must match the pinned npm integrity
(sha512) and every file taken from it its pinned sha256: a changed package is refused, not served.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from api.errors import VaxvaultError

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
FETCH_HINT = "run `make assets` (or `.venv/bin/vaxvault assets fetch`; it needs npm and the npm registry)"


class AssetsError(VaxvaultError):
    """The pinned files could not be fetched or do not match their hashes."""


@dataclass(frozen=True)
class VendorFile:
    member: str  # path inside the npm tarball
    name: str    # file name under vendor/<package>/
    sha256: str


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's Subresource Integrity string of the tarball
    files: tuple[VendorFile, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


# GraphiQL 3 is the last major version with a self-contained UMD bundle (4 and 5 need a bundler
# and web workers); it runs on React 18's UMD builds (React 19 ships none).
PACKAGES = (
    Package("graphiql", "3.8.3",
            "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
            (VendorFile("package/graphiql.min.js", "graphiql.min.js",
                        "22faab94067b695e5f7959619fbe686ebcc8955002a0c97d986bcbba4ad4bc2c"),
             VendorFile("package/graphiql.min.css", "graphiql.min.css",
                        "b1868247f8e0502cd869e581f5f3cb55b334862e7f51b1d6cbace11059b9adc2"))),
    Package("react", "18.3.1",
            "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
            (VendorFile("package/umd/react.production.min.js", "react.production.min.js",
                        "d949f1c3687aedadcedac85261865f29b17cd273997e7f6b2bfc53b2f9d4c4dd"),)),
    Package("react-dom", "18.3.1",
            "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
            (VendorFile("package/umd/react-dom.production.min.js", "react-dom.production.min.js",
                        "35f4f974f4b2bcd44da73963347f8952e341f83909e4498227d4e26b98f66f0d"),)),
)


def vendor_path(package: Package, file: VendorFile, root: Path | None = None) -> Path:
    return (root or VENDOR_DIR) / package.name / file.name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing(root: Path | None = None, check_hashes: bool = False) -> list[str]:
    """The pinned files that are absent (or, with `check_hashes`, differ), as `package/file`."""
    gone = []
    for package in PACKAGES:
        for file in package.files:
            path = vendor_path(package, file, root)
            if not path.is_file() or (check_hashes and _sha256(path) != file.sha256):
                gone.append(f"{package.name}/{file.name}")
    return gone


def _integrity(tarball: Path, pinned: str) -> str:
    algorithm, _ = pinned.split("-", 1)
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def _npm_pack(package: Package, into: Path, npm: str) -> Path:
    try:
        subprocess.run([npm, "pack", package.spec, "--pack-destination", str(into), "--silent"],
                       check=True, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as exc:
        raise AssetsError(f"npm is not installed ({npm}); install Node.js and npm "
                          "(Debian: apt-get install npm), then fetch again") from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise AssetsError(f"npm pack {package.spec} failed: {detail[0]}; check that the npm "
                          "registry is reachable") from exc
    except subprocess.TimeoutExpired as exc:
        raise AssetsError(f"npm pack {package.spec} took over 5 minutes; check the network "
                          "to the npm registry") from exc
    tarballs = list(into.glob(f"{package.name}-{package.version}.tgz"))
    if len(tarballs) != 1:
        raise AssetsError(f"npm pack {package.spec} left no {package.name}-{package.version}.tgz")
    return tarballs[0]


def _install(package: Package, tarball: Path, root: Path) -> None:
    found = _integrity(tarball, package.integrity)
    if found != package.integrity:
        raise AssetsError(f"{package.spec} from the registry has integrity {found}, not the "
                          f"pinned {package.integrity}; refusing it")
    target = root / package.name
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for file in package.files:
            source = archive.extractfile(file.member)
            if source is None:
                raise AssetsError(f"{package.spec} has no file {file.member}")
            data = source.read()
            if hashlib.sha256(data).hexdigest() != file.sha256:
                raise AssetsError(f"{package.spec}: {file.member} differs from its pinned sha256")
            partial = target / f".{file.name}.part"
            partial.write_bytes(data)
            partial.replace(target / file.name)


def fetch(root: Path | None = None, npm: str = "npm") -> list[str]:
    """Fetch what is missing or wrong under `root`; returns the package specs fetched (none when
    every file is present and matches). Raises AssetsError naming the package and what to do."""
    root = root or VENDOR_DIR
    fetched = []
    wrong = set(missing(root, check_hashes=True))
    needed = [p for p in PACKAGES if any(f"{p.name}/{f.name}" in wrong for f in p.files)]
    if not needed:
        return []
    scratch = Path(tempfile.mkdtemp(prefix="vaxvault-assets-"))
    try:
        for package in needed:
            _install(package, _npm_pack(package, scratch, npm), root)
            fetched.append(package.spec)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return fetched
