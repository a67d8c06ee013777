"""Another node's availability from its retained status, proof against late Wills.

A node's status carries a ``session`` that grows on every connect. An ``online: false`` whose
session is older than the newest ``online: true`` seen is the late Will of a connection that
is already replaced: it is ignored. An empty retained payload means nobody vouches for the node.
"""

from __future__ import annotations

import logging

from xephang.contract import NodeStatus, decode

log = logging.getLogger(__name__)


class NodeWatch:
    """Availability of one node (usually the hub), fed with its status payloads."""

    def __init__(self, node: str = "hub") -> None:
        self.node = node
        self.online = False
        self.session = 0

    def update(self, payload: bytes) -> bool | None:
        """Apply a status payload. Returns the node's availability now, or None when the
        payload was a stale Will and changed nothing. Raises BadPayload for junk."""
        if not payload:
            self.online = False
            return False
        st = decode(NodeStatus, payload)
        if st.online:
            self.session = max(self.session, st.session)
            self.online = True
        elif st.session >= self.session:
            self.online = False
        else:
            log.debug("stale Will of %s (session %s < %s) ignored", self.node, st.session, self.session)
            return None
        return self.online
