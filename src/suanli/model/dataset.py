"""Dataset: data a member owns, who may read it and where it may be processed."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.model.ids import DatasetId, MemberId, SiteId


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset and its rules.

    ``readers``: members whose jobs may read it (the owner always may).
    Residency: jobs reading it may run only at ``sites``, or at any site of ``members``; when
    both are empty the data may go anywhere in the pool. The two combine as a union.

    ``path``: where its files lie, relative to the owner's directory under each site's data
    root (``DATA_ROOT/OWNER/PATH`` on the nodes; the dataset's id when empty). A job that names
    the dataset sees it read-only at ``$SUANLI_DATA_DIR/ID``; no other job sees it.
    """

    id: DatasetId
    owner: MemberId
    readers: frozenset[MemberId] = frozenset()
    resident_sites: frozenset[SiteId] = frozenset()
    resident_members: frozenset[MemberId] = frozenset()
    path: str = ""
    #: members whose federated runs may train on it where it lies (they get the aggregated
    #: model, never the data); its readers and owner may too
    federated_with: frozenset[MemberId] = frozenset()

    @property
    def location(self) -> str:
        """Where its files lie under a site's data root: ``OWNER/PATH``."""
        return f"{self.owner}/{self.path or self.id}"

    def may_read(self, member: MemberId) -> bool:
        return member == self.owner or member in self.readers

    def may_federate(self, member: MemberId) -> bool:
        """May a federated run submitted by ``member`` train on this dataset?"""
        return self.may_read(member) or member in self.federated_with

    @property
    def restricted(self) -> bool:
        return bool(self.resident_sites or self.resident_members)
