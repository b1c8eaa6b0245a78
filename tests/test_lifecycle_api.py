"""Lifecycle policies carried out: previews (StartLifecyclePolicyPreview /
GetLifecyclePolicyPreview), ``moorage lifecycle run`` and the server's periodic run, against the
worked examples of ecr-api.md §4.5, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import update

from moorage.commands.lifecycle import parse_instant
from moorage.config import Settings
from moorage.errors import RepositoryNotFound
from moorage.lifecycle.executor import (
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    PREVIEW_TIMEOUT_SECONDS,
    LifecycleExecutor,
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewInProgress,
    LifecyclePolicyPreviewNotFound,
)
from moorage.lifecycle.rules import LifecyclePolicyInvalid
from moorage.registry.repositories import RepositorySettings
from moorage.services import build_services
from moorage.storage.metadata.database import Database
from moorage.storage.metadata.schema import Repository
from tests.conftest import ACCOUNT_ID, start_server, stop_server
from tests.images import OCI_INDEX, OCI_MANIFEST, BuiltImage, compact, digest_of, make_image, make_index

NOW = 1738368000.0  # 2025-02-01T00:00:00Z, the "now" of ecr-api.md §4.5
DAY, HOUR = 86_400.0, 3_600.0
QUIET_CLOCK = {"MOORAGE_TEST_CLOCK": "1", "MOORAGE_LIFECYCLE_INTERVAL": "0", "MOORAGE_GC_INTERVAL": "0"}
FAST_WAITER = {"Delay": 0.1, "MaxAttempts": 100}


# ---------------------------------------------------------------------------- helpers


def policy(*rules: dict) -> str:
    text = json.dumps({"rules": list(rules)})
    return text if len(text) >= 100 else text[:-1] + " " * (100 - len(text)) + "}"


def rule(priority: int, tag_status: str, count_type: str, count: int, *,
         prefixes: list[str] | None = None, patterns: list[str] | None = None) -> dict:
    selection: dict = {"tagStatus": tag_status, "countType": count_type, "countNumber": count}
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    if count_type != "imageCountMoreThan":
        selection["countUnit"] = "days"
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def set_clock(server, now: float | None) -> None:  # type: ignore[no-untyped-def]
    """Freeze the server's clock at ``now``; None: wall clock. AWS clients keep signing with
    real time: SigV4 freshness is checked against real time, never the test clock."""
    response = httpx.post(server.url + "/_moorage/clock", json={"now": now}, timeout=10)
    assert response.status_code == 200, response.text


def push_blobs(ecr, repository: str, blobs: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    for digest, blob in blobs.items():
        upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=0,
                              partLastByte=len(blob) - 1, layerPartBlob=blob)
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest])


def put_manifest(ecr, repository: str, manifest: bytes, media_type: str, tags: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    for tag in tags or (None,):
        extra = {"imageTag": tag} if tag else {}
        ecr.put_image(repositoryName=repository, imageManifest=manifest.decode(),
                      imageManifestMediaType=media_type, **extra)


def with_subject(image: BuiltImage, subject: BuiltImage) -> BuiltImage:
    """``image`` turned into a referrer of ``subject`` (OCI 1.1 ``subject``)."""
    document = json.loads(image.manifest)
    document["artifactType"] = "application/vnd.example.signature"
    document["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest,
                           "size": len(subject.manifest)}
    return BuiltImage(compact(document), image.config, image.layers)


def digests(ecr, repository: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {d["imageDigest"] for d in ecr.describe_images(repositoryName=repository)["imageDetails"]}


def when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


# ---------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """A worked example: images as label → (tags, age in seconds before NOW), a policy, and the
    expected expirations as label → rulePriority."""

    name: str
    images: dict[str, tuple[tuple[str, ...], float]]
    policy_text: str
    expected: dict[str, int]
    repository: str = ""
    built: dict[str, BuiltImage] = field(default_factory=dict)

    def digest(self, label: str) -> str:
        return self.built[label].digest

    def expected_results(self) -> list[tuple[str, int]]:
        ordered = sorted(self.expected.items(),
                         key=lambda item: (item[1], -self.images[item[0]][1], self.digest(item[0])))
        return [(self.digest(label), priority) for label, priority in ordered]


def scenarios() -> list[Scenario]:
    return [
        Scenario(  # L1: the higher rule protects what it keeps
            "l1",
            {"A": (("beta-1", "prod-1"), 10 * DAY), "B": (("beta-2", "prod-2"), 9 * DAY),
             "C": (("beta-3",), 8 * DAY)},
            policy(rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["prod"]),
                   rule(2, "tagged", "imageCountMoreThan", 1, prefixes=["beta"])),
            {"A": 1}),
        Scenario(  # L3: prefixes are ANDed; age rule
            "l3",
            {"A": (("alpha-1",), 12 * DAY), "B": (("beta-1",), 11 * DAY),
             "C": (("alpha-2", "beta-2"), 10 * DAY), "D": (("alpha-3",), 4 * DAY),
             "E": (("beta-3",), 3 * DAY), "F": (("alpha-4", "beta-4"), 2 * DAY)},
            policy(rule(1, "tagged", "sinceImagePushed", 5, prefixes=["alpha", "beta"])),
            {"C": 1}),
        Scenario(  # L6: three rule kinds; the any rule only touches unclaimed images
            "l6",
            {"A": (("alpha-1", "beta-1"), 96 * HOUR), "B": ((), 72 * HOUR),
             "C": (("alpha-2",), 48 * HOUR), "D": (("githash",), 30 * HOUR), "E": ((), 20 * HOUR)},
            policy(rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["alpha"]),
                   rule(2, "untagged", "sinceImagePushed", 1),
                   rule(3, "any", "imageCountMoreThan", 1)),
            {"A": 1, "B": 2, "D": 3}),
        Scenario(  # L7: wildcard patterns, overlapping rules, untagged count
            "l7",
            {"P1": (("prod-1",), 30 * DAY), "P2": (("prod-2",), 20 * DAY),
             "P3": (("prod-3",), 10 * DAY), "P4": (("prod-4", "prod-4-rc1"), 1 * DAY),
             "R1": (("v1-rc1",), 15 * DAY), "R2": (("v2-rc2",), 3 * DAY),
             "U1": ((), 40 * DAY), "U2": ((), 2 * DAY)},
            policy(rule(1, "tagged", "imageCountMoreThan", 2, patterns=["prod-*"]),
                   rule(2, "tagged", "sinceImagePushed", 7, patterns=["*-rc*"]),
                   rule(3, "untagged", "imageCountMoreThan", 1)),
            {"P1": 1, "P2": 1, "R1": 2, "U1": 3}),
    ]


def push_scenario(server, ecr, scenario: Scenario) -> None:  # type: ignore[no-untyped-def]
    ecr.create_repository(repositoryName=scenario.repository)
    for label, (tags, age) in sorted(scenario.images.items(), key=lambda item: -item[1][1]):
        image = make_image(layer_count=1, layer_bytes=64)
        scenario.built[label] = image
        set_clock(server, NOW - age)
        push_blobs(ecr, scenario.repository, image.blobs)
        put_manifest(ecr, scenario.repository, image.manifest, OCI_MANIFEST, tags)
    ecr.put_lifecycle_policy(repositoryName=scenario.repository, lifecyclePolicyText=scenario.policy_text)


def check_preview(ecr, scenario: Scenario) -> None:  # type: ignore[no-untyped-def]
    name = scenario.repository
    started = ecr.start_lifecycle_policy_preview(repositoryName=name)
    assert started["status"] == "IN_PROGRESS"
    assert started["lifecyclePolicyText"] == scenario.policy_text
    assert started["repositoryName"] == name and started["registryId"] == ACCOUNT_ID
    ecr.get_waiter("lifecycle_policy_preview_complete").wait(repositoryName=name, WaiterConfig=FAST_WAITER)
    got = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert got["status"] == "COMPLETE" and got["lifecyclePolicyText"] == scenario.policy_text
    results = got["previewResults"]
    assert [(r["imageDigest"], r["appliedRulePriority"]) for r in results] == scenario.expected_results()
    by_digest = {image.digest: label for label, image in scenario.built.items()}
    for result in results:
        tags, age = scenario.images[by_digest[result["imageDigest"]]]
        assert result.get("imageTags", []) == sorted(tags)
        assert result["imagePushedAt"] == when(NOW - age)
        assert result["action"] == {"type": "EXPIRE"} and result["storageClass"] == "STANDARD"
    assert got["summary"] == {"expiringImageTotalCount": len(scenario.expected)}
    assert "nextToken" not in got


# ---------------------------------------------------------------------------- end to end


@pytest.fixture
def clock_server(own_server):  # type: ignore[no-untyped-def]
    return own_server(QUIET_CLOCK)


def test_worked_examples_preview_dry_run_and_run(clock_server):
    server = clock_server
    ecr = server.ecr()
    examples = scenarios()
    for scenario in examples:
        scenario.repository = f"lifecycle/{scenario.name}"
        push_scenario(server, ecr, scenario)

    # An index keeps its untagged children alive; expiring a subject takes its referrers along.
    ecr.create_repository(repositoryName="lifecycle/index")
    set_clock(server, NOW - 10 * DAY)
    children = {"amd64": make_image("amd64", 1, 64), "arm64": make_image("arm64", 1, 64)}
    orphan = make_image(layer_count=1, layer_bytes=64)
    signature = with_subject(make_image(layer_count=1, layer_bytes=16), orphan)
    for image in [*children.values(), orphan, signature]:
        push_blobs(ecr, "lifecycle/index", image.blobs)
    for image in children.values():
        put_manifest(ecr, "lifecycle/index", image.manifest, OCI_MANIFEST, ())
    index = make_index(children)
    put_manifest(ecr, "lifecycle/index", index, OCI_INDEX, ("v1",))
    put_manifest(ecr, "lifecycle/index", orphan.manifest, OCI_MANIFEST, ())
    put_manifest(ecr, "lifecycle/index", signature.manifest, OCI_MANIFEST, ("sig",))
    untagged_policy = policy(rule(1, "untagged", "sinceImagePushed", 1))
    ecr.put_lifecycle_policy(repositoryName="lifecycle/index", lifecyclePolicyText=untagged_policy)

    # A stored policy that no longer parses is skipped (never deletes anything).
    ecr.create_repository(repositoryName="lifecycle/broken")
    broken = make_image(layer_count=1, layer_bytes=64)
    push_blobs(ecr, "lifecycle/broken", broken.blobs)
    put_manifest(ecr, "lifecycle/broken", broken.manifest, OCI_MANIFEST, ())
    database = Database(server.database_url)
    with database.transaction() as session:
        session.execute(update(Repository).where(Repository.name == "lifecycle/broken")
                        .values(lifecycle_policy='{"rules": "not a list"}' + " " * 80))
    database.dispose()

    set_clock(server, NOW)
    for scenario in examples:
        check_preview(ecr, scenario)
    assert ecr.start_lifecycle_policy_preview(repositoryName="lifecycle/index")["status"] == "IN_PROGRESS"
    ecr.get_waiter("lifecycle_policy_preview_complete").wait(repositoryName="lifecycle/index",
                                                             WaiterConfig=FAST_WAITER)
    index_preview = ecr.get_lifecycle_policy_preview(repositoryName="lifecycle/index")
    assert [(r["imageDigest"], r["appliedRulePriority"]) for r in index_preview["previewResults"]] == [
        (orphan.digest, 1)]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.start_lifecycle_policy_preview(repositoryName="lifecycle/broken")

    # Filters and pagination over L7's four results.
    l7 = examples[3]
    first = ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, maxResults=3)
    second = ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, maxResults=3,
                                              nextToken=first["nextToken"])
    assert "nextToken" not in second
    assert [(r["imageDigest"], r["appliedRulePriority"]) for r in
            first["previewResults"] + second["previewResults"]] == l7.expected_results()
    assert second["summary"] == {"expiringImageTotalCount": 4}
    untagged = ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, filter={"tagStatus": "UNTAGGED"})
    assert [r["imageDigest"] for r in untagged["previewResults"]] == [l7.digest("U1")]
    tagged = ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, filter={"tagStatus": "TAGGED"})
    assert len(tagged["previewResults"]) == 3 and tagged["summary"] == {"expiringImageTotalCount": 4}
    by_id = ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, imageIds=[
        {"imageTag": "v1-rc1"}, {"imageDigest": l7.digest("P1")}, {"imageTag": "prod-3"}])
    assert {r["imageDigest"] for r in by_id["previewResults"]} == {l7.digest("R1"), l7.digest("P1")}
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, maxResults=1,
                                         imageIds=[{"imageTag": "v1-rc1"}])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_lifecycle_policy_preview(repositoryName=l7.repository, nextToken="forged.token")

    before = {s.repository: digests(ecr, s.repository) for s in examples}

    # Dry run: prints every expiration with its rule, deletes nothing, records nothing.
    dry = server.moorage("lifecycle", "run", "--dry-run", "--now", str(int(NOW)))
    assert dry.returncode == 0, dry.stderr
    assert "2025-02-01T00:00:00Z" in dry.stdout and "dry run" in dry.stdout
    for scenario in examples:
        for digest, priority in scenario.expected_results():
            assert f"would expire {digest}  rulePriority {priority}" in dry.stdout, dry.stdout
    assert f"would expire {orphan.digest}  rulePriority 1" in dry.stdout
    assert dry.stdout.count("would expire sha256:") == sum(len(s.expected) for s in examples) + 1
    assert "lifecycle/broken" in dry.stdout and "stored lifecycle policy is invalid" in dry.stdout
    assert {s.repository: digests(ecr, s.repository) for s in examples} == before
    assert "lastEvaluatedAt" not in ecr.get_lifecycle_policy(repositoryName=examples[0].repository)

    # What-if at another instant, ISO 8601: on 2025-02-20 L3's F is old enough too.
    l3 = examples[1]
    what_if = server.moorage("lifecycle", "run", "--dry-run", "--repository", l3.repository,
                      "--now", "2025-02-20T00:00:00Z")
    assert what_if.returncode == 0, what_if.stderr
    assert what_if.stdout.count("would expire sha256:") == 2
    for label in ("C", "F"):
        assert f"would expire {l3.digest(label)}  rulePriority 1" in what_if.stdout
    assert "lifecycle/l1" not in what_if.stdout
    assert digests(ecr, l3.repository) == before[l3.repository]

    # The real run deletes exactly the expected images.
    real = server.moorage("lifecycle", "run", "--now", str(NOW))
    assert real.returncode == 0, real.stderr
    for scenario in examples:
        for digest, priority in scenario.expected_results():
            assert f"expired {digest}  rulePriority {priority}" in real.stdout
        survivors = {scenario.digest(label) for label in scenario.images if label not in scenario.expected}
        assert digests(ecr, scenario.repository) == survivors, scenario.name
        evaluated = ecr.get_lifecycle_policy(repositoryName=scenario.repository)
        assert evaluated["lastEvaluatedAt"] == when(NOW)
    assert f"deleted with subject {signature.digest}" in real.stdout
    assert digests(ecr, "lifecycle/index") == {c.digest for c in children.values()} | {digest_of(index)}
    assert digests(ecr, "lifecycle/broken") == {broken.digest}
    assert "lastEvaluatedAt" not in ecr.get_lifecycle_policy(repositoryName="lifecycle/broken")

    # Evaluating again at the same instant acts on nothing; a new preview agrees.
    check_preview(ecr, Scenario("again", examples[0].images, examples[0].policy_text, {},
                                repository=examples[0].repository, built=examples[0].built))
    again = server.moorage("lifecycle", "run", "--repository", examples[0].repository, "--now", str(NOW))
    assert again.returncode == 0 and "0 expired" in again.stdout, again.stdout
    missing = server.moorage("lifecycle", "run", "--repository", "lifecycle/absent")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_now = server.moorage("lifecycle", "run", "--now", "yesterday")
    assert bad_now.returncode == 2 and "--now" in bad_now.stderr

    # Garbage collection reclaims exactly the expired images' blobs, and fsck finds the
    # registry consistent. (The images were pushed on the test clock, in the past.)
    expired_blobs = {digest: len(blob) for s in examples for label in s.expected
                     for digest, blob in s.built[label].blobs.items()}
    collected = server.moorage("gc")
    assert collected.returncode == 0, collected.stderr
    for digest in expired_blobs:
        assert f"blob {digest}" in collected.stdout
    with server.http() as http:
        for scenario in examples:
            for label in scenario.images:
                if label in scenario.expected:
                    continue
                for digest in scenario.built[label].blobs:
                    assert http.head(f"/v2/{scenario.repository}/blobs/{digest}").status_code == 200
    checked = server.moorage("fsck")
    assert checked.returncode == 0 and "0 problems" in checked.stdout, checked.stdout


def test_the_server_runs_policies_periodically(tmp_path, fresh_database_url):
    server = start_server(tmp_path / "data", fresh_database_url,
                          {"MOORAGE_LIFECYCLE_INTERVAL": "1", "MOORAGE_GC_INTERVAL": "0"})
    try:
        ecr = server.ecr()
        ecr.create_repository(repositoryName="periodic/app")
        images = [make_image(layer_count=1, layer_bytes=64) for _ in range(3)]
        for number, image in enumerate(images):
            push_blobs(ecr, "periodic/app", image.blobs)
            put_manifest(ecr, "periodic/app", image.manifest, OCI_MANIFEST, (f"v{number}",))
        assert len(digests(ecr, "periodic/app")) == 3
        ecr.put_lifecycle_policy(repositoryName="periodic/app",
                                 lifecyclePolicyText=policy(rule(1, "any", "imageCountMoreThan", 1)))
        deadline = time.monotonic() + 15
        while digests(ecr, "periodic/app") != {images[-1].digest}:
            assert time.monotonic() < deadline, digests(ecr, "periodic/app")
            time.sleep(0.2)
        assert "lastEvaluatedAt" in ecr.get_lifecycle_policy(repositoryName="periodic/app")
        assert "lifecycle.expired" in server.log()
    finally:
        stop_server(server)


# ---------------------------------------------------------------------------- API errors


def test_preview_errors(server, ecr):
    name = f"lifecycle/errors-{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException):
        ecr.get_lifecycle_policy_preview(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.start_lifecycle_policy_preview(repositoryName=name)
    invalid = policy({"rulePriority": 0, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                                       "countNumber": 1}, "action": {"type": "expire"}})
    with pytest.raises(ecr.exceptions.InvalidParameterException) as excinfo:
        ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=invalid)
    assert ("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy "
            "validation failure: numeric instance is lower than the required minimum") in str(excinfo.value)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException):
        ecr.get_lifecycle_policy_preview(repositoryName=name)
    for operation in (ecr.start_lifecycle_policy_preview, ecr.get_lifecycle_policy_preview):
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
            operation(repositoryName=name + "-absent")

    # An override is previewed without being attached.
    override = policy(rule(1, "any", "imageCountMoreThan", 5))
    started = ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=override)
    assert started["lifecyclePolicyText"] == override and started["status"] == "IN_PROGRESS"
    waited = subprocess.run(  # the AWS CLI's waiter
        ["aws", "ecr", "wait", "lifecycle-policy-preview-complete", "--repository-name", name,
         "--endpoint-url", server.url],
        env=server.env(), capture_output=True, text=True, timeout=120)
    assert waited.returncode == 0, waited.stderr
    got = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert got["status"] == "COMPLETE" and got["lifecyclePolicyText"] == override
    assert got["previewResults"] == [] and got["summary"] == {"expiringImageTotalCount": 0}
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=name)


# ---------------------------------------------------------------------------- executor


@pytest.fixture
def services(tmp_path, fresh_database_url):  # type: ignore[no-untyped-def]
    built = build_services(Settings(data_dir=tmp_path / "data", database_url=fresh_database_url,
                                    account_id=ACCOUNT_ID))
    built.repositories.create("exec/app", RepositorySettings())
    built.repositories.set_policy("exec/app", "lifecycle_policy", policy(rule(1, "any", "imageCountMoreThan", 1)))
    built.repositories.create("exec/bare", RepositorySettings())
    yield built
    built.close()


def test_one_preview_at_a_time(services):
    jobs: list = []
    executor = LifecycleExecutor(services, spawn=jobs.append)
    services.context.clock.frozen_at = NOW
    with pytest.raises(LifecyclePolicyPreviewNotFound):
        executor.get_preview("exec/app")
    started = executor.start_preview("exec/app")
    assert started.status == IN_PROGRESS and len(jobs) == 1
    assert executor.get_preview("exec/app").status == IN_PROGRESS
    assert executor.get_preview("exec/app").results is None
    with pytest.raises(LifecyclePolicyPreviewInProgress):
        executor.start_preview("exec/app")
    with pytest.raises(LifecyclePolicyPreviewInProgress):
        executor.start_preview("exec/app", policy(rule(1, "any", "imageCountMoreThan", 3)))
    jobs.pop()()
    view = executor.get_preview("exec/app")
    assert view.status == COMPLETE and view.results == []
    assert view.summary == {"expiringImageTotalCount": 0}
    executor.start_preview("exec/app")  # a finished preview is replaced
    assert executor.get_preview("exec/app").status == IN_PROGRESS

    # A preview whose process stopped is reported FAILED after the timeout and can be replaced;
    # the abandoned job, should it finish late, does not overwrite its successor.
    abandoned = jobs.pop()
    services.context.clock.frozen_at = NOW + PREVIEW_TIMEOUT_SECONDS + 1
    assert executor.get_preview("exec/app").status == FAILED
    executor.start_preview("exec/app", policy(rule(1, "any", "imageCountMoreThan", 7)))
    abandoned()
    assert executor.get_preview("exec/app").status == IN_PROGRESS
    jobs.pop()()
    assert executor.get_preview("exec/app").status == COMPLETE
    assert '"countNumber": 7' in executor.get_preview("exec/app").policy_text


def test_preview_failure_and_errors(services, monkeypatch):
    jobs: list = []
    executor = LifecycleExecutor(services, spawn=jobs.append)

    def broken(name: str) -> list:
        raise RuntimeError("metadata exploded")

    monkeypatch.setattr(executor, "image_facts", broken)
    executor.start_preview("exec/app")
    jobs.pop()()
    view = executor.get_preview("exec/app")
    assert view.status == FAILED and "metadata exploded" in (view.failure_reason or "")
    assert view.results is None and view.summary is None
    # A failure during a run is reported, not raised.
    summary = executor.run()
    assert [r.repository for r in summary.repositories] == ["exec/app"]
    assert "metadata exploded" in summary.repositories[0].errors[0]

    with pytest.raises(LifecyclePolicyNotFound):
        executor.start_preview("exec/bare")
    with pytest.raises(LifecyclePolicyInvalid):
        executor.start_preview("exec/bare", "{}" + " " * 100)
    with pytest.raises(RepositoryNotFound):
        executor.start_preview("exec/absent")
    with pytest.raises(RepositoryNotFound):
        executor.run("exec/absent")
    with pytest.raises(LifecyclePolicyNotFound):
        executor.run("exec/bare")


def test_run_records_last_evaluated_unless_dry_run(services):
    executor = LifecycleExecutor(services)
    dry = executor.run(dry_run=True, now=NOW)
    assert dry.dry_run and dry.now == NOW and dry.expired_count == 0
    assert services.repositories.get("exec/app").lifecycle_evaluated_at is None
    services.context.clock.frozen_at = NOW + 5
    done = executor.run()
    assert done.now == NOW + 5 and [r.repository for r in done.repositories] == ["exec/app"]
    assert services.repositories.get("exec/app").lifecycle_evaluated_at == NOW + 5


@pytest.mark.parametrize(("text", "expected"), [
    ("1738368000", NOW),
    ("1738368000.5", NOW + 0.5),
    ("2025-02-01T00:00:00Z", NOW),
    ("2025-02-01", NOW),
    ("2025-02-01T01:00:00+01:00", NOW),
])
def test_now_accepts_epoch_seconds_and_iso_8601(text, expected):
    assert parse_instant(text) == expected


def test_now_rejects_other_text():
    with pytest.raises(ValueError):
        parse_instant("yesterday")
