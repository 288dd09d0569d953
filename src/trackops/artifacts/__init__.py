"""Artifact stores behind one protocol: local folders, S3, and ``mlflow-artifacts:`` resolved onto either."""

from trackops.artifacts.base import (
    CHUNK_SIZE,
    ArtifactAccessDenied,
    ArtifactConflict,
    ArtifactEntry,
    ArtifactError,
    ArtifactNotFound,
    ArtifactReader,
    ArtifactRepository,
    ArtifactStoreNotFound,
    DeleteFailure,
    DeleteResult,
)
from trackops.artifacts.paths import InvalidArtifactPath, validate_path
from trackops.artifacts.registry import locate, register, repository_for, split_artifact_uri

__all__ = [
    "CHUNK_SIZE", "ArtifactAccessDenied", "ArtifactConflict", "ArtifactEntry", "ArtifactError",
    "ArtifactNotFound", "ArtifactReader", "ArtifactRepository", "ArtifactStoreNotFound",
    "DeleteFailure", "DeleteResult", "InvalidArtifactPath", "locate", "register", "repository_for",
    "split_artifact_uri", "validate_path",
]
