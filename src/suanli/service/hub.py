"""The alliance's hub: repos of models and datasets owned by members, their revisions
(commits, branches, tags) and who may read and write them. Files are blobs in the
:class:`~suanli.hub.stores.Stores` (a resident dataset's in its sites' stores only);
everything else is rows (``hub_*`` tables).

Who may do what:

- a repo is owned by a member and named ``MEMBER/NAME``; its member's admins and users (and
  alliance admins) create it, commit to it, branch and tag it, and change who may read it;
- ``visibility``: ``private`` (its member only), ``members`` (and the members in
  ``shared_with``), ``alliance`` (every user of the alliance), ``public`` (anyone, without a
  token). A repo nobody outside its member may read needs no licence; any other names its
  licence in its card (README.md's front matter ``license``), checked on every commit and
  change of visibility;
- a repo the caller may not read is answered as one that does not exist (404), so that its
  name is not disclosed.

A commit's files are written as blobs before any row; its rows (the commit, its whole tree)
and the branch's move are one transaction whose update of the branch is conditional on the
head it read: two racing commits to one branch cannot both land on the same parent, and a
crash leaves either the whole revision or none of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from suanli.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    UnauthenticatedError,
    ValidationError,
)
from suanli.hub import card, names
from suanli.hub.commit import Operations
from suanli.hub.stores import Stores
from suanli.ledger.record import Kind, Record
from suanli.service import audit
from suanli.service.auth import Principal, Role
from suanli.store.codec import placement_from_json
from suanli.store.ledger_rows import REAL, append
from suanli.store.tables import (
    HubCommitRow,
    HubFileRow,
    HubRefRow,
    HubRepoRow,
    JobRow,
    MemberRow,
    NodeRow,
    SiteRow,
)

VISIBILITIES = ("private", "members", "alliance", "public")
MAIN = "main"


class RepoNotFound(NotFoundError):
    """No such repo, or one the caller may not read."""


class RevisionNotFound(NotFoundError):
    pass


class EntryNotFound(NotFoundError):
    pass


@dataclass(frozen=True)
class FileView:
    path: str
    size: int
    sha256: str
    sha1: str


@dataclass(frozen=True)
class RepoView:
    kind: str
    id: str
    visibility: str
    shared_with: list[str]
    created_by: str
    created_at: float
    #: the revision asked for (main by default)
    sha: str
    last_modified: float
    licence: str | None
    files: list[FileView] = field(default_factory=list)
    resident_sites: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    """A file of a revision, and where its bytes are."""

    commit: str
    file: FileView
    blob: Path


@dataclass(frozen=True)
class RefView:
    kind: str
    name: str
    commit: str


@dataclass(frozen=True)
class CommitView:
    sha: str
    parent: str | None
    summary: str
    author: str
    created_at: float
    job: str | None


# -- who may -----------------------------------------------------------------------------


def _may_read(row: HubRepoRow, who: Principal | None) -> bool:
    if row.visibility == "public":
        return True
    if who is None:
        return False
    if who.admin or who.member == row.member or row.visibility == "alliance":
        return True
    return row.visibility == "members" and who.member in row.shared_with


def _may_write(member: str, who: Principal | None) -> bool:
    if who is None:
        return False
    writers = (Role.MEMBER_ADMIN, Role.MEMBER_USER)
    return who.admin or (who.member == member and who.role in writers)


def _label(kind: str, repo_id: str) -> str:
    return f"{kind} repo {repo_id!r}"


def find(s: Session, who: Principal | None, kind: str, repo_id: str) -> HubRepoRow:
    member, name = names.repo_id(repo_id)
    row = s.scalars(
        select(HubRepoRow).where(
            HubRepoRow.kind == names.kind(kind),
            HubRepoRow.member == member,
            HubRepoRow.name == name,
        )
    ).first()
    if row is None or not _may_read(row, who):
        raise RepoNotFound(f"no {_label(kind, repo_id)} (or you may not read it)")
    return row


def _signed_in(who: Principal | None) -> Principal:
    if who is None:
        raise UnauthenticatedError("a bearer token is required (Authorization: Bearer TOKEN)")
    return who


def _writable(s: Session, who: Principal | None, kind: str, repo_id: str) -> HubRepoRow:
    _signed_in(who)
    row = find(s, who, kind, repo_id)
    if not _may_write(row.member, who):
        raise PermissionDeniedError(f"only {row.member}'s users write to {repo_id}")
    return row


def _may_take_out(s: Session, row: HubRepoRow, who: Principal | None) -> None:
    """A resident dataset's files go to its member's users and to runs placed at its sites
    only (not to other readers, alliance admins included): 403 with the reason otherwise."""
    sites = row.resident_sites or []
    if not sites or (who is not None and who.member == row.member and who.job is None):
        return
    if who is not None and who.job is not None:
        at = _run_sites(s, who.job)
        if at and at <= set(sites):
            return
        where = ", ".join(sorted(at)) or "no site"
        raise PermissionDeniedError(
            f"{row.member}/{row.name} is resident at {', '.join(sites)}: "
            f"this run is placed at {where}"
        )
    raise PermissionDeniedError(
        f"{row.member}/{row.name} is resident at {', '.join(sites)}: its files go only to "
        f"{row.member}'s users and to runs placed there"
    )


def _run_sites(s: Session, job_id: str) -> set[str]:
    """The sites a run's job is placed at."""
    job = s.scalars(select(JobRow).where(JobRow.id == job_id)).first()
    placed = placement_from_json(job.placement).nodes if job and job.placement else ()
    return {n.site for n in s.scalars(select(NodeRow).where(NodeRow.id.in_(placed)))}


def check_writable(s: Session, who: Principal | None, kind: str, repo_id: str) -> list[str]:
    """Raises unless ``who`` may commit to the repo (asked before a commit's body is read);
    the sites the repo is resident at (its body is kept in their stores only)."""
    return list(_writable(s, who, kind, repo_id).resident_sites or [])


# -- revisions -----------------------------------------------------------------------------


def resolve(s: Session, row: HubRepoRow, revision: str) -> str:
    names.revision(revision)
    for kind in ("branch", "tag"):
        ref = s.get(HubRefRow, (row.id, kind, revision))
        if ref is not None:
            return ref.commit
    if names.is_commit(revision):
        found = s.scalars(
            select(HubCommitRow.sha).where(
                HubCommitRow.sha == revision, HubCommitRow.repo == row.id
            )
        ).first()
        if found is not None:
            return found
    raise RevisionNotFound(f"no revision {revision!r} in {row.member}/{row.name}")


def _tree(s: Session, sha: str) -> dict[str, HubFileRow]:
    rows = s.scalars(select(HubFileRow).where(HubFileRow.commit == sha))
    return {r.path: r for r in rows}


def _view(f: HubFileRow) -> FileView:
    return FileView(f.path, f.size, f.sha256, f.sha1)


def _licence(stores: Stores, row: HubRepoRow, tree: dict[str, HubFileRow]) -> str | None:
    readme = tree.get("README.md")
    if readme is None:
        return None
    with stores.find(readme.sha256, row.resident_sites).open("rb") as f:
        text = f.read(card.MAX_CARD).decode("utf-8", errors="replace")
    return card.licence(text)


def card_text(
    s: Session, stores: Stores, who: Principal | None, kind: str, repo_id: str, revision: str
) -> str | None:
    """The repo's card (README.md) at a revision, its first MiB (None: it has none)."""
    row = find(s, who, kind, repo_id)
    readme = s.get(HubFileRow, (resolve(s, row, revision), "README.md"))
    if readme is None:
        return None
    with stores.find(readme.sha256, row.resident_sites).open("rb") as f:
        return f.read(card.MAX_CARD).decode("utf-8", errors="replace")


def info(
    s: Session, stores: Stores, who: Principal | None, kind: str, repo_id: str, revision: str
) -> RepoView:
    row = find(s, who, kind, repo_id)
    sha = resolve(s, row, revision)
    commit = s.get(HubCommitRow, sha)
    assert commit is not None
    tree = _tree(s, sha)
    files = [_view(f) for f in sorted(tree.values(), key=lambda f: f.path)]
    return _repo_view(row, sha, commit.created_at, _licence(stores, row, tree), files)


def _repo_view(
    row: HubRepoRow, sha: str, changed: float, licence: str | None, files: list[FileView]
) -> RepoView:
    return RepoView(
        kind=row.kind,
        id=f"{row.member}/{row.name}",
        visibility=row.visibility,
        shared_with=list(row.shared_with),
        created_by=row.created_by,
        created_at=row.created_at,
        sha=sha,
        last_modified=changed,
        licence=licence,
        files=files,
        resident_sites=list(row.resident_sites or []),
    )


def tree(
    s: Session,
    who: Principal | None,
    kind: str,
    repo_id: str,
    revision: str,
    folder: str,
    recursive: bool,
) -> tuple[str, list[FileView], list[str]]:
    """The files and folders under ``folder`` ("" for the top) at a revision: its commit, the
    files, the folders (all levels below when ``recursive``)."""
    row = find(s, who, kind, repo_id)
    sha = resolve(s, row, revision)
    prefix = f"{names.file_path(folder)}/" if folder else ""
    files: list[FileView] = []
    folders: set[str] = set()
    for path, f in sorted(_tree(s, sha).items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            if recursive or depth == 1:
                folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            files.append(_view(f))
    if prefix and not files and not folders:
        raise EntryNotFound(f"no folder {folder!r} at {revision!r} of {repo_id}")
    return sha, files, sorted(folders)


def file(
    s: Session,
    stores: Stores,
    who: Principal | None,
    kind: str,
    repo_id: str,
    revision: str,
    path: str,
) -> Resolved:
    row = find(s, who, kind, repo_id)
    _may_take_out(s, row, who)
    sha = resolve(s, row, revision)
    found = s.get(HubFileRow, (sha, names.file_path(path)))
    if found is None:
        raise EntryNotFound(f"no file {path!r} at {revision!r} of {repo_id}")
    # a run reads the copy at its own site where it has one
    near = _run_sites(s, who.job) if who is not None and who.job is not None else set()
    return Resolved(sha, _view(found), stores.find(found.sha256, row.resident_sites, near))


def paths(
    s: Session, who: Principal | None, kind: str, repo_id: str, revision: str, wanted: list[str]
) -> tuple[list[FileView], list[str]]:
    """Of ``wanted`` paths at a revision, the files and the folders (others are left out)."""
    row = find(s, who, kind, repo_id)
    current = _tree(s, resolve(s, row, revision))
    files, folders = [], []
    for i, path in enumerate(wanted):
        names.file_path(path, f"paths[{i}]")
        if path in current:
            files.append(_view(current[path]))
        elif any(p.startswith(path + "/") for p in current):
            folders.append(path)
    return files, folders


def refs(s: Session, who: Principal | None, kind: str, repo_id: str) -> list[RefView]:
    row = find(s, who, kind, repo_id)
    rows = s.scalars(
        select(HubRefRow).where(HubRefRow.repo == row.id).order_by(HubRefRow.kind, HubRefRow.name)
    )
    return [RefView(r.kind, r.name, r.commit) for r in rows]


def history(
    s: Session, who: Principal | None, kind: str, repo_id: str, revision: str, limit: int = 100
) -> list[CommitView]:
    """A revision's commits, newest first."""
    row = find(s, who, kind, repo_id)
    found = commits_of(s, resolve(s, row, revision), limit)
    return [CommitView(c.sha, c.parent, c.summary, c.author, c.created_at, c.job) for c in found]


def repos(s: Session, who: Principal | None, kind: str, member: str | None) -> list[RepoView]:
    """The repos of a kind (of one member) that ``who`` may read, at their main branch."""
    q = select(HubRepoRow).where(HubRepoRow.kind == names.kind(kind))
    if member is not None:
        q = q.where(HubRepoRow.member == member)
    out = []
    for row in s.scalars(q.order_by(HubRepoRow.member, HubRepoRow.name)):
        if not _may_read(row, who):
            continue
        head = s.get(HubRefRow, (row.id, "branch", MAIN))
        commit = s.get(HubCommitRow, head.commit) if head is not None else None
        sha = commit.sha if commit is not None else ""
        changed = commit.created_at if commit is not None else row.created_at
        out.append(_repo_view(row, sha, changed, None, []))
    return out


# -- changes -------------------------------------------------------------------------------


def _visibility(visibility: str, shared_with: list[str], s: Session) -> None:
    if visibility not in VISIBILITIES:
        raise ValidationError(
            [Problem("visibility", f"{visibility!r} is not one of {', '.join(VISIBILITIES)}")]
        )
    unknown = sorted(m for m in shared_with if s.get(MemberRow, m) is None)
    if unknown:
        raise ValidationError([Problem("shared_with", f"no member {', '.join(unknown)}")])
    if shared_with and visibility != "members":
        raise ValidationError([Problem("shared_with", "only with visibility 'members'")])


def _commit_id(parent: str | None, tree: dict[str, tuple[str, int, str]], message: str) -> str:
    """A revision's id: the sha1 of its parent, its files and its message (40 hex, as the
    Hugging Face client expects of a commit)."""
    body = json.dumps([parent, sorted(tree.items()), message], separators=(",", ":"))
    return hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


def create(
    s: Session,
    who: Principal | None,
    kind: str,
    repo_id: str,
    visibility: str,
    now: float,
    shared_with: list[str] | None = None,
) -> RepoView:
    """A new repo with an empty first revision on ``main``."""
    _signed_in(who)
    member, name = names.repo_id(repo_id, "name")
    names.kind(kind)
    if s.get(MemberRow, member) is None:
        raise NotFoundError(f"no member {member!r} (a repo is named MEMBER/NAME)")
    if not _may_write(member, who):
        raise PermissionDeniedError(f"only {member}'s admins and users create its repos")
    assert who is not None
    _visibility(visibility, shared_with or [], s)
    taken = s.scalars(
        select(HubRepoRow.id).where(
            HubRepoRow.kind == kind, HubRepoRow.member == member, HubRepoRow.name == name
        )
    ).first()
    if taken is not None:
        raise ConflictError(f"the {_label(kind, repo_id)} exists")
    row = HubRepoRow(
        kind=kind,
        member=member,
        name=name,
        visibility=visibility,
        shared_with=sorted(set(shared_with or [])),
        created_by=who.name,
        created_at=now,
    )
    s.add(row)
    s.flush()
    sha = _commit_id(None, {}, f"{kind} {repo_id} created by {who.name} at {now}")
    s.add(
        HubCommitRow(
            sha=sha, repo=row.id, summary="initial commit", author=who.name, created_at=now
        )
    )
    s.flush()
    s.add(HubRefRow(repo=row.id, kind="branch", name=MAIN, commit=sha))
    audit.record(s, now, who.name, "hub.create", f"{kind}:{repo_id}", visibility=visibility)
    return RepoView(
        kind, f"{member}/{name}", visibility, row.shared_with, who.name, now, sha, now, None
    )


def _needs_licence(
    visibility: str, stores: Stores, row: HubRepoRow, tree: dict[str, HubFileRow]
) -> None:
    if visibility != "private" and tree and _licence(stores, row, tree) is None:
        raise ValidationError(
            [
                Problem(
                    "README.md",
                    f"a {visibility} repo names its licence in its card: README.md beginning "
                    "with front matter such as '---\\nlicense: apache-2.0\\n---'",
                )
            ],
            "commit",
        )


def preupload(
    s: Session, who: Principal | None, kind: str, repo_id: str, revision: str, paths: list[str]
) -> dict[str, str | None]:
    """For each path to upload, the git blob id of the file there now (None: no file), so
    that the client skips unchanged files. Every file is then sent in the commit itself."""
    row = _writable(s, who, kind, repo_id)
    sha = resolve(s, row, revision)
    for i, path in enumerate(paths):
        names.file_path(path, f"files[{i}].path")
    current = _tree(s, sha)
    return {p: current[p].sha1 if p in current else None for p in paths}


def commit(
    s: Session,
    stores: Stores,
    who: Principal | None,
    kind: str,
    repo_id: str,
    branch: str,
    ops: Operations,
    now: float,
) -> str:
    """A new revision on ``branch`` from the operations read off a commit's body (their
    blobs are stored already): its id. The branch moves only if it still points where it
    did when this began (409 otherwise). A run's commit records its job (lineage).

    Each new file's blob is copied into every store the repo's files belong in (its resident
    sites', or the central one) before a row is written."""
    row = _writable(s, who, kind, repo_id)
    assert who is not None
    ref = s.get(HubRefRow, (row.id, "branch", names.revision(branch, "revision")))
    if ref is None:
        raise RevisionNotFound(f"no branch {branch!r} in {repo_id} (commits go to branches)")
    head = ref.commit
    if ops.parent is not None and ops.parent != head:
        raise ConflictError(f"{branch} is at {head}, not at the parentCommit {ops.parent}")
    tree = {p: (f.sha256, f.size, f.sha1) for p, f in _tree(s, head).items()}
    _apply(tree, ops, who, s)
    files = {p: HubFileRow(path=p, sha256=a, size=b, sha1=c) for p, (a, b, c) in tree.items()}
    for sha256 in {b.sha256 for b in ops.added.values()} | set(ops.linked.values()):
        stores.place(sha256, row.resident_sites)
    _needs_licence(row.visibility, stores, row, files)
    message = ops.summary + ("\n\n" + ops.description if ops.description else "")
    sha = _commit_id(head, {p: (a, b, c) for p, (a, b, c) in tree.items()}, message)
    if s.get(HubCommitRow, sha) is not None:
        raise ConflictError(f"this revision exists already ({sha})")
    s.add(
        HubCommitRow(
            sha=sha,
            repo=row.id,
            parent=head,
            summary=ops.summary or "update",
            description=ops.description,
            author=who.name,
            created_at=now,
            job=who.job,
        )
    )
    s.flush()
    for f in files.values():
        f.commit = sha
        s.add(f)
    moved = s.execute(
        update(HubRefRow)
        .where(
            HubRefRow.repo == row.id,
            HubRefRow.kind == "branch",
            HubRefRow.name == branch,
            HubRefRow.commit == head,
        )
        .values(commit=sha)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(f"{branch} of {repo_id} moved while this commit was written: retry")
    audit.record(s, now, who.name, "hub.commit", f"{kind}:{repo_id}", branch=branch, sha=sha)
    return sha


def _readable_blob(s: Session, who: Principal, sha256: str, path: str) -> tuple[str, int, str]:
    rows = s.execute(
        select(HubFileRow, HubRepoRow)
        .join(HubCommitRow, HubCommitRow.sha == HubFileRow.commit)
        .join(HubRepoRow, HubRepoRow.id == HubCommitRow.repo)
        .where(HubFileRow.sha256 == sha256)
    ).all()
    for f, repo in rows:
        if _may_read(repo, who) and _may_take(s, repo, who):
            return (sha256, f.size, f.sha1)
    raise ValidationError([Problem(path, f"no file {sha256} that you may read")], "commit")


def _may_take(s: Session, row: HubRepoRow, who: Principal) -> bool:
    try:
        _may_take_out(s, row, who)
    except PermissionDeniedError:
        return False
    return True


def _apply(
    tree: dict[str, tuple[str, int, str]], ops: Operations, who: Principal, s: Session
) -> None:
    for path in ops.deleted_files:
        if tree.pop(path, None) is None:
            raise ValidationError([Problem(path, "no such file to delete")], "commit")
    for folder in ops.deleted_folders:
        inside = [p for p in tree if p.startswith(folder + "/")]
        if not inside:
            raise ValidationError([Problem(folder, "no such folder to delete")], "commit")
        for p in inside:
            del tree[p]
    for path, blob in ops.added.items():
        tree[path] = (blob.sha256, blob.size, blob.sha1)
    for path, sha256 in ops.linked.items():
        # only the bytes of a file the committer may read already (as a copy does): a
        # sha256 alone must not reach another member's private file
        tree[path] = _readable_blob(s, who, sha256, path)
    _no_file_under_a_file(tree)


def _no_file_under_a_file(tree: dict[str, tuple[str, int, str]]) -> None:
    for path in tree:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in tree:
                prefix = "/".join(parts[:depth])
                raise ValidationError(
                    [Problem(path, f"{prefix!r} is a file, not a folder")], "commit"
                )


def create_ref(
    s: Session,
    stores: Stores,
    who: Principal | None,
    kind: str,
    repo_id: str,
    ref_kind: str,
    name: str,
    start: str,
    now: float,
) -> RefView:
    """A new branch or tag at revision ``start``."""
    row = _writable(s, who, kind, repo_id)
    assert who is not None
    names.revision(name, ref_kind)
    if names.is_commit(name):
        raise ValidationError([Problem(ref_kind, "a 40-hex name would read as a commit id")])
    sha = resolve(s, row, start)
    for k in ("branch", "tag"):
        if s.get(HubRefRow, (row.id, k, name)) is not None:
            raise ConflictError(f"{repo_id} has a {k} {name!r} already")
    s.add(HubRefRow(repo=row.id, kind=ref_kind, name=name, commit=sha))
    audit.record(s, now, who.name, f"hub.{ref_kind}", f"{kind}:{repo_id}", name=name, sha=sha)
    if ref_kind == "tag":
        _release(s, stores, row, name, sha, who, now)
    return RefView(ref_kind, name, sha)


def _release(
    s: Session,
    stores: Stores,
    row: HubRepoRow,
    tag: str,
    sha: str,
    who: Principal,
    now: float,
) -> None:
    """A tag is a release: appended to the ledger's chain with what made it (the licence of
    its tree, the jobs whose runs committed its history), in the tag's transaction."""
    repo_id = f"{row.member}/{row.name}"
    jobs = sorted({c.job for c in commits_of(s, sha) if c.job is not None})
    detail = {
        "repo": repo_id,
        "kind": row.kind,
        "tag": tag,
        "commit": sha,
        "licence": _licence(stores, row, _tree(s, sha)),
        "jobs": jobs,
        "by": who.name,
    }
    model = f"{row.kind}:{repo_id}"
    record = Record(REAL, Kind.RELEASE, row.member, row.member, model, 0, now, now, 0.0)
    append(s, [replace(record, detail=detail)])


def commits_of(s: Session, sha: str | None, limit: int = 10_000) -> list[HubCommitRow]:
    out: list[HubCommitRow] = []
    while sha is not None and len(out) < limit:
        c = s.get(HubCommitRow, sha)
        if c is None:
            break
        out.append(c)
        sha = c.parent
    return out


def delete_ref(
    s: Session, who: Principal | None, kind: str, repo_id: str, ref_kind: str, name: str, now: float
) -> None:
    row = _writable(s, who, kind, repo_id)
    assert who is not None
    if ref_kind == "branch" and name == MAIN:
        raise ValidationError([Problem("branch", "main cannot be deleted")])
    ref = s.get(HubRefRow, (row.id, ref_kind, name))
    if ref is None:
        raise RevisionNotFound(f"no {ref_kind} {name!r} in {repo_id}")
    s.delete(ref)
    audit.record(s, now, who.name, f"hub.delete-{ref_kind}", f"{kind}:{repo_id}", name=name)


def set_residency(
    s: Session,
    stores: Stores,
    who: Principal | None,
    kind: str,
    repo_id: str,
    sites: list[str],
    now: float,
) -> list[str]:
    """Keep a dataset's files at ``sites`` (its member's own sites; [] lifts the rule): each
    of its blobs is copied into its new homes here; the blobs to :func:`prune` once this
    transaction has committed (their copies where they no longer belong) are returned."""
    row = _writable(s, who, kind, repo_id)
    assert who is not None
    if row.kind != "dataset" and sites:
        raise ValidationError([Problem("residentSites", "only a dataset is resident")])
    own = set(s.scalars(select(SiteRow.id).where(SiteRow.member == row.member)))
    wrong = sorted(set(sites) - own)
    if wrong:
        raise ValidationError(
            [Problem("residentSites", f"not a site of {row.member}: {', '.join(wrong)}")]
        )
    row.resident_sites = sorted(set(sites))
    held = _blobs_of(s, row.id)
    for sha256 in held:
        stores.place(sha256, row.resident_sites)
    audit.record(s, now, who.name, "hub.residency", f"{kind}:{repo_id}", sites=row.resident_sites)
    return held


def _blobs_of(s: Session, repo: int) -> list[str]:
    return list(
        s.scalars(
            select(HubFileRow.sha256)
            .join(HubCommitRow, HubCommitRow.sha == HubFileRow.commit)
            .where(HubCommitRow.repo == repo)
            .distinct()
        )
    )


def prune(s: Session, stores: Stores, blobs: list[str]) -> int:
    """Moves each blob to the stores where some repo's files belong (the central store while
    a repo that is not resident holds it; each site's where a repo resident there does):
    copied into each of them first, then removed from the others; how many copies went.
    A blob in no repo is left where it is."""
    gone = 0
    for sha256 in blobs:
        homes: set[str] = set()
        central = False
        holders = (
            select(HubCommitRow.repo)
            .join(HubFileRow, HubFileRow.commit == HubCommitRow.sha)
            .where(HubFileRow.sha256 == sha256)
        )
        for resident in s.scalars(
            select(HubRepoRow.resident_sites).where(HubRepoRow.id.in_(holders))
        ):
            homes.update(resident or [])
            central = central or not resident
        if not homes and not central:
            continue
        try:
            for site in homes:
                stores.place(sha256, [site])
            if central:
                stores.place(sha256, None)
        except FileNotFoundError:
            continue  # (no copy anywhere: nothing to move)
        keep = [stores.central] if central else []
        keep += [stores.site(h) for h in homes]
        for store in stores.every():
            if all(store is not k for k in keep) and store.has(sha256):
                store.remove(sha256)
                gone += 1
    return gone


def set_visibility(
    s: Session,
    stores: Stores,
    who: Principal | None,
    kind: str,
    repo_id: str,
    visibility: str,
    shared_with: list[str],
    now: float,
) -> None:
    row = _writable(s, who, kind, repo_id)
    assert who is not None
    _visibility(visibility, shared_with, s)
    for ref in s.scalars(select(HubRefRow).where(HubRefRow.repo == row.id)):
        _needs_licence(visibility, stores, row, _tree(s, ref.commit))
    row.visibility, row.shared_with = visibility, sorted(set(shared_with))
    audit.record(
        s,
        now,
        who.name,
        "hub.visibility",
        f"{kind}:{repo_id}",
        visibility=visibility,
        shared_with=row.shared_with,
    )
