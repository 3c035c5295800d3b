"""docker-compose.yml, the Dockerfile and the ImageMagick policy, tested without Docker: the files
parse, every command, module, path and setting they name exists in the project, the one-shot
bucket command works against a real S3 server, and the policy does what it says under ImageMagick."""

from __future__ import annotations

import os
import re
import secrets
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
import redis
import yaml

from tasks.formats import FORMATS, OUTPUT_FORMATS
from tests.services import ROOT, free_port, redis_server_binary, s3_client_for, s3_server, wait_until

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]
PROJECT_TEXT = "\n".join(
    p.read_text()
    for pattern in ("translator/*.py", "tasks/*.py", "celeryconfig.py", "docs/*.md")
    for p in ROOT.glob(pattern)
)


def test_services_and_dependencies():
    assert set(SERVICES) == {"redis", "s3", "s3-init", "worker", "http-worker", "flower", "api", "translator"}
    for name in ("redis", "s3", "worker", "http-worker", "flower", "api"):
        assert "healthcheck" in SERVICES[name], name
    assert SERVICES["s3-init"]["depends_on"] == {"s3": {"condition": "service_healthy"}}
    worker_deps = SERVICES["worker"]["depends_on"]
    assert worker_deps["redis"] == {"condition": "service_healthy"}
    assert worker_deps["s3-init"] == {"condition": "service_completed_successfully"}


def test_redis_persists_with_aof():
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-data:/data" in SERVICES["redis"]["volumes"]


PASSWORD_REQUIRED = "${REDIS_PASSWORD:?set REDIS_PASSWORD}"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Docker Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}", one, value)


def _redis_urls() -> list[tuple[str, str, str]]:
    return [
        (service, name, value)
        for service, spec in SERVICES.items()
        for name, value in (spec.get("environment") or {}).items()
        if str(value).startswith("redis")
    ]


def test_redis_requires_a_password_from_the_environment():
    redis_service = SERVICES["redis"]
    command = redis_service["command"]
    assert command[command.index("--requirepass") + 1] == PASSWORD_REQUIRED
    # the healthcheck authenticates (redis-cli reads REDISCLI_AUTH), and only PONG counts
    assert redis_service["environment"] == {"REDISCLI_AUTH": PASSWORD_REQUIRED}
    assert redis_service["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    urls = _redis_urls()
    assert {(service, name) for service, name, _ in urls} == {
        (service, name)
        for service in ("worker", "http-worker", "flower", "api", "translator")
        for name in ("CELERY_BROKER_URL", "TRANSLATOR_STATE_URL")
    }
    for service, name, url in urls:
        assert url.startswith(f"redis://:{PASSWORD_REQUIRED}@redis:6379/"), (service, name, url)


def _interpolate_all(node: object, env: dict[str, str]) -> object:
    """The compose file's values (not its comments) interpolated, as ``docker compose up`` does."""
    if isinstance(node, dict):
        return {key: _interpolate_all(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_all(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def test_compose_refuses_to_start_without_a_redis_password():
    env = {"S3_SECRET_KEY": "s", "FLOWER_BASIC_AUTH": "a:b", "TRANSLATOR_API_TOKEN": "t"}
    with pytest.raises(ValueError, match="REDIS_PASSWORD is missing a value: set REDIS_PASSWORD"):
        _interpolate_all(COMPOSE, env)
    resolved = _interpolate_all(COMPOSE, {**env, "REDIS_PASSWORD": "pw"})
    assert "REDIS_PASSWORD" not in repr(resolved)
    assert resolved["services"]["worker"]["environment"]["CELERY_BROKER_URL"] == "redis://:pw@redis:6379/0"


@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed")
def test_the_compose_redis_command_runs_and_only_the_services_urls_get_in(tmp_path):
    """redis-server started with the compose service's command line (password substituted, on a
    private port and directory); the services' URLs and the healthcheck authenticate."""
    password, port = secrets.token_hex(16), free_port()
    env = {"REDIS_PASSWORD": password, "S3_SECRET_KEY": "s", "FLOWER_BASIC_AUTH": "a:b"}
    command = [interpolate(part, env) for part in SERVICES["redis"]["command"]]
    assert command[0] == "redis-server"
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--daemonize", "no"]
    log = (tmp_path / "redis.log").open("wb")
    server = subprocess.Popen([redis_server_binary(), *command[1:], *local], stdout=log, stderr=log)
    try:
        anonymous = redis.Redis(port=port, socket_connect_timeout=1)

        def refused() -> bool:
            try:
                anonymous.ping()
            except redis.AuthenticationError:
                return True
            except redis.ConnectionError:
                assert server.poll() is None, (tmp_path / "redis.log").read_text()
            return False

        wait_until(refused, timeout=30, what="redis-server refuses clients without the password")
        for service, name, url in _redis_urls():
            local_url = interpolate(url, env).replace("@redis:6379/", f"@127.0.0.1:{port}/")
            assert redis.Redis.from_url(local_url).ping(), (service, name)
        health = SERVICES["redis"]["healthcheck"]["test"][1].replace("redis-cli", f"redis-cli -p {port}")
        for auth, status in ((password, 0), ("wrong", 1)):
            result = subprocess.run(
                ["sh", "-c", health], env={**os.environ, "REDISCLI_AUTH": auth}, timeout=30, check=False
            )
            assert result.returncode == status, auth
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def test_worker_pool_shares_a_named_volume():
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "shared:/shared" in worker["volumes"]
    assert "shared" in COMPOSE["volumes"]
    env = worker["environment"]
    assert env["TRANSLATOR_SHARED_DIR"].startswith("/shared/")
    assert env["TRANSLATOR_INPUT_ROOT"].startswith("/shared/")


def test_http_tasks_have_their_own_workers_without_s3_secrets():
    main, http = SERVICES["worker"], SERVICES["http-worker"]
    assert main["command"][4:6] == ["-Q", "celery"]  # the default queue only
    assert http["command"][:6] == ["celery", "-A", "tasks", "worker", "-Q", "http"]
    assert "threads" in http["command"]
    assert not [name for name in http["environment"] if name.startswith("AWS_")]
    assert http["environment"]["TRANSLATOR_FETCH_ALLOW"] == "${TRANSLATOR_FETCH_ALLOW:-}"


def test_flower_has_basic_auth_from_the_environment():
    flower = SERVICES["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_flower_and_the_bucket_init_get_only_the_secrets_they_use():
    flower, init = SERVICES["flower"], SERVICES["s3-init"]
    assert "env_file" not in flower and "env_file" not in init
    assert not [name for name in flower["environment"] if name.startswith("AWS_")]
    assert not [v for v in flower["environment"].values() if "S3_" in str(v)]  # no S3 key by another name
    assert set(flower["environment"]) == {
        "CELERY_BROKER_URL",
        "TRANSLATOR_STATE_URL",
        "TRANSLATOR_VISIBILITY_TIMEOUT",
        "FLOWER_BASIC_AUTH",
    }
    assert not [v for v in init["environment"].values() if "REDIS" in str(v)]


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "S3_SECRET_KEY:?" in text
    assert not re.search(r"SECRET_ACCESS_KEY:\s*['\"]?[A-Za-z0-9]{8,}", text)


def test_every_setting_named_is_used_by_the_project():
    names = set()
    for service in SERVICES.values():
        names |= set((service.get("environment") or {}).keys())
    ours = {n for n in names if n.startswith(("TRANSLATOR_", "CELERY_"))}
    assert ours, names
    for name in ours:
        assert name in PROJECT_TEXT, name
    aws = {n for n in names if n.startswith("AWS_")}
    assert aws == {"AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


def test_commands_name_real_modules_and_entry_points():
    assert SERVICES["worker"]["command"][:4] == ["celery", "-A", "tasks", "worker"]
    assert SERVICES["flower"]["command"][:4] == ["celery", "-A", "tasks", "flower"]
    assert SERVICES["s3-init"]["command"] == ["python", "-m", "tasks", "ensure-bucket"]
    assert SERVICES["translator"]["entrypoint"] == ["translator"]
    assert 'translator = "translator.cli:run_cli"' in (ROOT / "pyproject.toml").read_text()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tasks; print(tasks.app.main, sorted(t for t in tasks.app.tasks if 'translator' in t))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "translator ['translator.step', 'translator.step_timed_out']"


def test_dockerfile_copies_existing_paths_and_drops_root():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert re.search(r"^USER translator$", DOCKERFILE, re.M)
    assert "COPY docker/policy.xml /etc/ImageMagick-6/policy.xml" in DOCKERFILE
    assert 'CMD ["celery", "-A", "tasks", "worker"' in DOCKERFILE
    installs = [line for line in DOCKERFILE.splitlines() if "apt-get install" in line]
    assert installs and all("ghostscript" not in line and "imagemagick " not in line for line in installs)


def test_bucket_init_command_against_a_real_s3_server():
    with s3_server(bucket="existing") as env:
        run_env = {**os.environ, **env, "TRANSLATOR_S3_BUCKET": "made-by-init", "PYTHONPATH": str(ROOT)}
        first = subprocess.run(
            [sys.executable, "-m", "tasks", "ensure-bucket"],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == "bucket made-by-init created"
        again = subprocess.run(
            [sys.executable, "-m", "tasks", "ensure-bucket"],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.stdout.strip() == "bucket made-by-init exists"
        client = s3_client_for(env)
        # moto keeps its buckets per process: servers started earlier in this process show theirs too
        assert {"existing", "made-by-init"} <= {b["Name"] for b in client.list_buckets()["Buckets"]}


POLICY = ET.parse(ROOT / "docker" / "policy.xml").getroot()
RULES = [(p.get("domain"), p.get("rights"), p.get("pattern"), p.get("name"), p.get("value")) for p in POLICY]
# The image formats the workers read (sniffed) and write, as ImageMagick coders.
PIPELINE_CODERS = sorted({f.coder for f in FORMATS.values()} | {FORMATS[n].coder for n in OUTPUT_FORMATS})


def test_policy_is_valid_and_strict():
    assert ("delegate", "none", "*", None, None) in RULES
    assert ("filter", "none", "*", None, None) in RULES
    paths = {r[2] for r in RULES if r[0] == "path" and r[1] == "none"}
    assert paths == {"-", "@*", "[Ff][Dd]:*", "/etc/*", "/proc/*", "/sys/*"}
    coders = [r for r in RULES if r[0] == "coder"]
    assert coders[0][1:3] == ("none", "*")  # deny everything first: the last matching rule wins
    allowed = set(coders[-1][2].strip("{}").split(","))
    assert coders[-1][1] == "read|write" and set(PIPELINE_CODERS) <= allowed
    assert "HEIC" not in allowed  # no input needs it (AVIF has its own coder name)
    resources = {r[3]: r[4] for r in RULES if r[0] == "resource"}
    assert set(resources) == {
        "memory",
        "map",
        "disk",
        "file",
        "width",
        "height",
        "area",
        "thread",
        "list-length",
    }
    assert "time" not in resources  # fatal to a long-lived worker (tasks/image.py)
    # the workers' own limits (tasks/config.py defaults) fit under the policy's, which they only lower
    assert (resources["width"], resources["height"], resources["area"]) == ("12KP", "12KP", "50MP")
    assert (resources["memory"], resources["map"], resources["disk"]) == ("256MiB", "512MiB", "1GiB")


POLICY_PROBE = r"""
import os, sys
from wand.image import Image
from wand.exceptions import PolicyError, WandException

inputs, coders = sys.argv[1], sys.argv[2].split(",")

def outcome(name, read):
    try:
        with read() as image:
            print(name, "read", f"{image.width}x{image.height}x{len(image.sequence)}")
    except PolicyError:
        print(name, "denied by policy")
    except WandException as exc:
        print(name, "refused", type(exc).__name__)

def blob(name, coder):
    return lambda: Image(blob=open(os.path.join(inputs, name), "rb").read(), format=coder)

for coder, data in (("MVG", b"viewbox 0 0 4 4\n"), ("TEXT", b"hi"), ("MSL", b"<image/>"), ("HEIC", b"x")):
    outcome(coder, lambda: Image(blob=data, format=coder))
with Image(filename=os.path.join(inputs, "sample.png")) as sample:
    sample.resize(60, 40)
    for coder in coders:  # every format the pipeline reads and writes: encode, then decode
        outcome(coder, lambda: Image(blob=sample.make_blob(coder), format=coder))
outcome("wide", blob("wide.png", "PNG"))
outcome("widest-allowed", blob("edge.png", "PNG"))
outcome("frames-100", blob("frames100.gif", "GIF"))
outcome("frames-16", blob("frames16.gif", "GIF"))
fd = os.open(os.path.join(inputs, "sample.png"), os.O_RDONLY)
for label, name in (
    ("@file", "@" + os.path.join(inputs, "list.txt")),
    ("/proc", f"/proc/self/fd/{fd}"),
    ("fd:", f"png:fd:{fd}"),
    ("stdin", "png:-"),
    ("/etc", "/etc/hostname"),
):
    outcome(label, lambda: Image(filename=name))
"""


def _png(width: int, height: int) -> bytes:
    """A grey PNG (written by hand: the test's own ImageMagick may have other limits)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress((b"\0" + b"\x80" * width) * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _gif(frames: int) -> bytes:
    """An animated GIF of ``frames`` 1x1 frames."""
    frame = b"!\xf9\x04\x00\x01\x00\x00\x00" + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00"
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00" + frame * frames + b";"


def _policy_probe(inputs: Path) -> dict[str, str]:
    env = {**os.environ, "MAGICK_CONFIGURE_PATH": str(ROOT / "docker")}
    result = subprocess.run(
        [sys.executable, "-c", POLICY_PROBE, str(inputs), ",".join(PIPELINE_CODERS)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_policy_under_imagemagick(tmp_path):
    (tmp_path / "sample.png").write_bytes((ROOT / "examples" / "sample.png").read_bytes())
    (tmp_path / "wide.png").write_bytes(_png(12_001, 1))
    (tmp_path / "edge.png").write_bytes(_png(12_000, 1))
    (tmp_path / "frames100.gif").write_bytes(_gif(100))
    (tmp_path / "frames16.gif").write_bytes(_gif(16))
    (tmp_path / "list.txt").write_text(str(tmp_path / "sample.png") + "\n")
    seen = _policy_probe(tmp_path)
    for coder in ("MVG", "TEXT", "MSL", "HEIC"):  # vector, text, scripting; HEIC is not needed
        assert seen.pop(coder) == "denied by policy", coder
    for coder in PIPELINE_CODERS:  # every format the pipeline reads and writes still converts
        assert seen.pop(coder) == "read 60x40x1", coder
    assert seen.pop("wide").startswith("refused")  # over the policy's width (12KP)
    assert seen.pop("widest-allowed") == "read 12000x1x1"
    assert seen.pop("frames-100").startswith("refused")  # over list-length
    assert seen.pop("frames-16") == "read 1x1x16"
    for path in ("@file", "/proc", "fd:", "stdin", "/etc"):  # indirect reads, descriptors, system files
        assert seen.pop(path) == "denied by policy", path
    assert seen == {}


def test_the_api_needs_a_token_and_is_published_on_loopback_only():
    api = SERVICES["api"]
    assert api["command"][:2] == ["translator", "serve"]
    assert api["environment"]["TRANSLATOR_API_TOKEN"] == "${TRANSLATOR_API_TOKEN:?set TRANSLATOR_API_TOKEN}"
    assert api["ports"] and all(port.startswith("127.0.0.1:") for port in api["ports"])
    env = {"S3_SECRET_KEY": "s", "FLOWER_BASIC_AUTH": "a:b", "REDIS_PASSWORD": "pw"}
    with pytest.raises(ValueError, match="TRANSLATOR_API_TOKEN is missing a value"):
        _interpolate_all(COMPOSE, env)
