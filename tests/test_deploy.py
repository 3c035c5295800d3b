"""docker-compose.yml, the Dockerfile and the ImageMagick policy, tested without Docker: the files
parse, every command, module, path and setting they name exists in the project, the one-shot
bucket command works against a real S3 server, and the policy does what it says under ImageMagick."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

from tests.services import ROOT, s3_client_for, s3_server

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]
PROJECT_TEXT = "\n".join(
    p.read_text()
    for pattern in ("translator/*.py", "tasks/*.py", "celeryconfig.py", "docs/*.md")
    for p in ROOT.glob(pattern)
)


def test_services_and_dependencies():
    assert set(SERVICES) == {"redis", "s3", "s3-init", "worker", "flower", "translator"}
    for name in ("redis", "s3", "worker", "flower"):
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


def test_worker_pool_shares_a_named_volume():
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "shared:/shared" in worker["volumes"]
    assert "shared" in COMPOSE["volumes"]
    env = worker["environment"]
    assert env["TRANSLATOR_SHARED_DIR"].startswith("/shared/")
    assert env["TRANSLATOR_INPUT_ROOT"].startswith("/shared/")


def test_flower_has_basic_auth_from_the_environment():
    flower = SERVICES["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


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
        assert {b["Name"] for b in client.list_buckets()["Buckets"]} == {"existing", "made-by-init"}


def test_policy_is_valid_and_strict():
    root = ET.parse(ROOT / "docker" / "policy.xml").getroot()
    rules = [
        (p.get("domain"), p.get("rights"), p.get("pattern"), p.get("name"), p.get("value")) for p in root
    ]
    assert ("delegate", "none", "*", None, None) in rules
    assert ("filter", "none", "*", None, None) in rules
    assert ("path", "none", "@*", None, None) in rules
    coders = [r for r in rules if r[0] == "coder"]
    assert coders[0][1:3] == ("none", "*")  # deny everything first: the last matching rule wins
    assert {r[3] for r in rules if r[0] == "resource"} >= {"memory", "width", "height", "area", "disk"}


POLICY_PROBE = r"""
from wand.image import Image
from wand.exceptions import PolicyError
data = open("examples/sample.png", "rb").read()
for coder, blob in (("MVG", b"viewbox 0 0 4 4\n"), ("TEXT", b"hello")):
    try:
        Image(blob=blob, format=coder)
        print(coder, "allowed")
    except PolicyError:
        print(coder, "denied")
with Image(blob=data, format="PNG") as image:
    for fmt in ("GIF", "JPEG", "WEBP", "TIFF", "BMP", "PNG"):
        with Image(blob=image.make_blob(fmt), format=fmt) as again:
            print(fmt, again.size)
"""


def test_policy_under_imagemagick():
    env = {**os.environ, "MAGICK_CONFIGURE_PATH": str(ROOT / "docker")}
    result = subprocess.run(
        [sys.executable, "-c", POLICY_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["MVG denied", "TEXT denied"]
    assert lines[2:] == [f"{fmt} (900, 900)" for fmt in ("GIF", "JPEG", "WEBP", "TIFF", "BMP", "PNG")]
