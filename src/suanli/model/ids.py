"""Typed identifiers: a member id cannot be passed where a node id is expected."""

from typing import NewType

MemberId = NewType("MemberId", str)
SiteId = NewType("SiteId", str)
NodeId = NewType("NodeId", str)
JobId = NewType("JobId", str)
DatasetId = NewType("DatasetId", str)
ModelId = NewType("ModelId", str)
